import { MigrateUpArgs, MigrateDownArgs, sql } from '@payloadcms/db-sqlite'

export async function up({ db, payload, req }: MigrateUpArgs): Promise<void> {
  await db.run(sql`CREATE TABLE \`stock_returns_lines\` (
  	\`_order\` integer NOT NULL,
  	\`_parent_id\` integer NOT NULL,
  	\`id\` text PRIMARY KEY NOT NULL,
  	\`product_id\` integer NOT NULL,
  	\`size\` text NOT NULL,
  	\`quantity\` numeric NOT NULL,
  	\`reason\` text DEFAULT 'returned' NOT NULL,
  	\`restocked\` numeric,
  	FOREIGN KEY (\`product_id\`) REFERENCES \`products\`(\`id\`) ON UPDATE no action ON DELETE set null,
  	FOREIGN KEY (\`_parent_id\`) REFERENCES \`stock_returns\`(\`id\`) ON UPDATE no action ON DELETE cascade
  );
  `)
  await db.run(sql`CREATE INDEX \`stock_returns_lines_order_idx\` ON \`stock_returns_lines\` (\`_order\`);`)
  await db.run(sql`CREATE INDEX \`stock_returns_lines_parent_id_idx\` ON \`stock_returns_lines\` (\`_parent_id\`);`)
  await db.run(sql`CREATE INDEX \`stock_returns_lines_product_idx\` ON \`stock_returns_lines\` (\`product_id\`);`)
  await db.run(sql`CREATE TABLE \`stock_returns\` (
  	\`id\` integer PRIMARY KEY NOT NULL,
  	\`reservation_id\` integer NOT NULL,
  	\`return_id\` text NOT NULL,
  	\`reference\` text,
  	\`note\` text,
  	\`recorded_at\` text,
  	\`updated_at\` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
  	\`created_at\` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
  	FOREIGN KEY (\`reservation_id\`) REFERENCES \`stock_reservations\`(\`id\`) ON UPDATE no action ON DELETE set null
  );
  `)
  await db.run(sql`CREATE INDEX \`stock_returns_reservation_idx\` ON \`stock_returns\` (\`reservation_id\`);`)
  await db.run(sql`CREATE UNIQUE INDEX \`stock_returns_return_id_idx\` ON \`stock_returns\` (\`return_id\`);`)
  await db.run(sql`CREATE INDEX \`stock_returns_reference_idx\` ON \`stock_returns\` (\`reference\`);`)
  await db.run(sql`CREATE INDEX \`stock_returns_updated_at_idx\` ON \`stock_returns\` (\`updated_at\`);`)
  await db.run(sql`CREATE INDEX \`stock_returns_created_at_idx\` ON \`stock_returns\` (\`created_at\`);`)
  await db.run(sql`ALTER TABLE \`stock_reservations\` ADD \`payment_payment_intent\` text;`)
  await db.run(sql`ALTER TABLE \`stock_reservations\` ADD \`payment_amount\` numeric;`)
  await db.run(sql`ALTER TABLE \`stock_reservations\` ADD \`payment_refunded\` numeric;`)
  await db.run(sql`ALTER TABLE \`stock_reservations\` ADD \`payment_dispute\` text;`)
  await db.run(sql`CREATE INDEX \`stock_reservations_payment_payment_payment_intent_idx\` ON \`stock_reservations\` (\`payment_payment_intent\`);`)
  await db.run(sql`ALTER TABLE \`payload_locked_documents_rels\` ADD \`stock_returns_id\` integer REFERENCES stock_returns(id);`)
  await db.run(sql`CREATE INDEX \`payload_locked_documents_rels_stock_returns_id_idx\` ON \`payload_locked_documents_rels\` (\`stock_returns_id\`);`)
}

export async function down({ db, payload, req }: MigrateDownArgs): Promise<void> {
  await db.run(sql`DROP TABLE \`stock_returns_lines\`;`)
  await db.run(sql`DROP TABLE \`stock_returns\`;`)
  await db.run(sql`PRAGMA foreign_keys=OFF;`)
  await db.run(sql`CREATE TABLE \`__new_payload_locked_documents_rels\` (
  	\`id\` integer PRIMARY KEY NOT NULL,
  	\`order\` integer,
  	\`parent_id\` integer NOT NULL,
  	\`path\` text NOT NULL,
  	\`users_id\` integer,
  	\`products_id\` integer,
  	\`stock_movements_id\` integer,
  	\`stock_reservations_id\` integer,
  	FOREIGN KEY (\`parent_id\`) REFERENCES \`payload_locked_documents\`(\`id\`) ON UPDATE no action ON DELETE cascade,
  	FOREIGN KEY (\`users_id\`) REFERENCES \`users\`(\`id\`) ON UPDATE no action ON DELETE cascade,
  	FOREIGN KEY (\`products_id\`) REFERENCES \`products\`(\`id\`) ON UPDATE no action ON DELETE cascade,
  	FOREIGN KEY (\`stock_movements_id\`) REFERENCES \`stock_movements\`(\`id\`) ON UPDATE no action ON DELETE cascade,
  	FOREIGN KEY (\`stock_reservations_id\`) REFERENCES \`stock_reservations\`(\`id\`) ON UPDATE no action ON DELETE cascade
  );
  `)
  await db.run(sql`INSERT INTO \`__new_payload_locked_documents_rels\`("id", "order", "parent_id", "path", "users_id", "products_id", "stock_movements_id", "stock_reservations_id") SELECT "id", "order", "parent_id", "path", "users_id", "products_id", "stock_movements_id", "stock_reservations_id" FROM \`payload_locked_documents_rels\`;`)
  await db.run(sql`DROP TABLE \`payload_locked_documents_rels\`;`)
  await db.run(sql`ALTER TABLE \`__new_payload_locked_documents_rels\` RENAME TO \`payload_locked_documents_rels\`;`)
  await db.run(sql`PRAGMA foreign_keys=ON;`)
  await db.run(sql`CREATE INDEX \`payload_locked_documents_rels_order_idx\` ON \`payload_locked_documents_rels\` (\`order\`);`)
  await db.run(sql`CREATE INDEX \`payload_locked_documents_rels_parent_idx\` ON \`payload_locked_documents_rels\` (\`parent_id\`);`)
  await db.run(sql`CREATE INDEX \`payload_locked_documents_rels_path_idx\` ON \`payload_locked_documents_rels\` (\`path\`);`)
  await db.run(sql`CREATE INDEX \`payload_locked_documents_rels_users_id_idx\` ON \`payload_locked_documents_rels\` (\`users_id\`);`)
  await db.run(sql`CREATE INDEX \`payload_locked_documents_rels_products_id_idx\` ON \`payload_locked_documents_rels\` (\`products_id\`);`)
  await db.run(sql`CREATE INDEX \`payload_locked_documents_rels_stock_movements_id_idx\` ON \`payload_locked_documents_rels\` (\`stock_movements_id\`);`)
  await db.run(sql`CREATE INDEX \`payload_locked_documents_rels_stock_reservations_id_idx\` ON \`payload_locked_documents_rels\` (\`stock_reservations_id\`);`)
  await db.run(sql`DROP INDEX \`stock_reservations_payment_payment_payment_intent_idx\`;`)
  await db.run(sql`ALTER TABLE \`stock_reservations\` DROP COLUMN \`payment_payment_intent\`;`)
  await db.run(sql`ALTER TABLE \`stock_reservations\` DROP COLUMN \`payment_amount\`;`)
  await db.run(sql`ALTER TABLE \`stock_reservations\` DROP COLUMN \`payment_refunded\`;`)
  await db.run(sql`ALTER TABLE \`stock_reservations\` DROP COLUMN \`payment_dispute\`;`)
}
