import type React from 'react';
import './shop.css';

export const metadata = { title: 'next-shop · payload-stock demo' };

export default function ShopLayout({ children }: { children: React.ReactNode }) {
  return (
    <html lang="en">
      <body>
        <header className="bar">
          <a href="/" className="brand">next-shop</a>
          <span className="note">payload-stock demo{process.env.STRIPE_TEST_MODE === '1' ? ' · Stripe test mode (no card is charged)' : ''}</span>
          <a href="/admin">Admin</a>
        </header>
        <main>{children}</main>
      </body>
    </html>
  );
}
