// GET /api/cron/clean-expired-reservations: the cron line (Vercel Cron sends `Authorization: Bearer $CRON_SECRET`).
// Asks the sidecar to release every expired reservation now; the sidecar also does so on its own schedule
// (CLEANUP_INTERVAL_SECONDS), so this route is for hosts where a cron is the norm.
import { NextResponse } from 'next/server';
import { sidecarUrl } from '../../../../../lib/stock';

export async function GET(request: Request) {
  const secret = process.env.CRON_SECRET;
  if (!secret || request.headers.get('authorization') !== `Bearer ${secret}`) {
    return NextResponse.json({ error: 'unauthorized', message: 'Authorization: Bearer $CRON_SECRET' }, { status: 401 });
  }
  const answer = await fetch(`${sidecarUrl()}/api/admin/clean-expired-reservations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${process.env.SIDECAR_ADMIN_TOKEN}` },
  });
  return NextResponse.json(await answer.json(), { status: answer.status });
}
