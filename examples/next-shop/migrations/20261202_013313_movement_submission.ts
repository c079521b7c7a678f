import { MigrateUpArgs, MigrateDownArgs, sql } from '@payloadcms/db-sqlite'

export async function up({ db, payload, req }: MigrateUpArgs): Promise<void> {
  await db.run(sql`ALTER TABLE \`stock_movements\` ADD \`submission\` text;`)
  await db.run(sql`CREATE INDEX \`stock_movements_submission_idx\` ON \`stock_movements\` (\`submission\`);`)
}

export async function down({ db, payload, req }: MigrateDownArgs): Promise<void> {
  await db.run(sql`DROP INDEX \`stock_movements_submission_idx\`;`)
  await db.run(sql`ALTER TABLE \`stock_movements\` DROP COLUMN \`submission\`;`)
}
