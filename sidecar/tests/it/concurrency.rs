//! Many buyers, few units: exactly as many reservations succeed as there are units, never more.

use futures_free::join_all;
use serde_json::json;

use crate::helpers::spawn_app;

/// `join_all` without a futures dependency: spawn every request, then await each.
mod futures_free {
    pub(super) async fn join_all<T: Send + 'static>(
        futures: impl IntoIterator<Item = impl std::future::Future<Output = T> + Send + 'static>,
    ) -> Vec<T> {
        let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
        let mut outputs = Vec::with_capacity(handles.len());
        for handle in handles {
            outputs.push(handle.await.expect("task"));
        }
        outputs
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_buyers_for_the_last_ten_units_get_exactly_ten_reservations() {
    let app = std::sync::Arc::new(spawn_app().await);
    app.restock("runner", "42", 10).await;

    let statuses = join_all((0..200).map(|buyer| {
        let app = app.clone();
        async move {
            let items = json!([{ "product": "runner", "size": "42", "quantity": 1 }]);
            app.reserve(&format!("pi_buyer_{buyer}"), items).await.status().as_u16()
        }
    }))
    .await;

    let reserved = statuses.iter().filter(|status| **status == 201).count();
    let refused = statuses.iter().filter(|status| **status == 409).count();
    assert_eq!((reserved, refused), (10, 190), "statuses: {statuses:?}");
    let size = app.size_stock("runner", "42").await;
    assert_eq!((size["reservedStock"].as_u64(), size["availableStock"].as_u64()), (Some(10), Some(0)));
}
