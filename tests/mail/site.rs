//! The operator's site on loopback: serves mail templates by path and counts the requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{StatusCode, Uri};

#[derive(Default)]
struct Pages {
    bodies: HashMap<String, String>,
    hits: HashMap<String, usize>,
}

/// A running site; paths not set answer 404.
#[derive(Clone)]
pub struct Site {
    pub url: String,
    pages: Arc<Mutex<Pages>>,
}

impl Site {
    pub async fn start() -> Self {
        let pages = Arc::new(Mutex::new(Pages::default()));
        let state = pages.clone();
        let app = axum::Router::new().fallback(move |uri: Uri| {
            let state = state.clone();
            async move {
                let mut p = state.lock().unwrap();
                *p.hits.entry(uri.path().to_owned()).or_default() += 1;
                match p.bodies.get(uri.path()) {
                    Some(b) => (StatusCode::OK, b.clone()),
                    None => (StatusCode::NOT_FOUND, "not found".to_owned()),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url: format!("http://{addr}"), pages }
    }

    pub fn set(&self, path: &str, body: &str) {
        self.pages.lock().unwrap().bodies.insert(path.to_owned(), body.to_owned());
    }

    pub fn hits(&self, path: &str) -> usize {
        self.pages.lock().unwrap().hits.get(path).copied().unwrap_or(0)
    }
}
