// GET /api/cron/clean-expired-reservations: the cron line (Vercel Cron sends `Authorization: Bearer $CRON_SECRET`).
// Asks the sidecar to release every expired reservation now; the sidecar also does so on its own schedule
// (CLEANUP_INTERVAL_SECONDS), so this route is for hosts where a cron is the norm.
import { createHash, timingSafeEqual } from 'node:crypto';
import { NextResponse } from 'next/server';
import { StockApiError } from 'payload-stock/client';
import { adminStockClient } from '../../../../../lib/stock';

/** Whether `presented` is `expected`, in time that does not depend on where they differ (both hashed first, so
 * their lengths do not show either). */
function sameSecret(presented: string, expected: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(presented), digest(expected));
}

export async function GET(request: Request) {
  const secret = process.env.CRON_SECRET;
  if (!secret || !sameSecret(request.headers.get('authorization') ?? '', `Bearer ${secret}`)) {
    return NextResponse.json({ error: 'unauthorized', message: 'Authorization: Bearer $CRON_SECRET' }, { status: 401 });
  }
  try {
    return NextResponse.json(await adminStockClient().cleanExpired());
  } catch (error) {
    // The sidecar's refusal keeps its code; an unreachable one is a 502, so the cron host reports a failed run.
    if (error instanceof StockApiError) {
      return NextResponse.json({ error: error.code, message: error.message }, { status: error.status || 502 });
    }
    throw error;
  }
}
