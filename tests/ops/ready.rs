//! `/ready`: 200 while the database answers, 503 (upstream's error shape) within the
//! 2-second limit while it refuses or hangs, 200 again once it is back; `/health` never
//! asks the database.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

use crate::scratch_mysql::{server_url, ScratchDb};
use crate::Server;

const FORWARD: u8 = 0;
const REFUSE: u8 = 1;
const BLACKHOLE: u8 = 2;

/// A TCP relay to the MySQL server that the test can cut or turn into a black hole.
struct Relay {
    port: u16,
    mode: Arc<AtomicU8>,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(FORWARD));
        let tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (m, t, h) = (Arc::clone(&mode), Arc::clone(&tasks), Arc::clone(&held));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                match m.load(Ordering::SeqCst) {
                    FORWARD => {
                        let target = target.clone();
                        let task = tokio::spawn(async move {
                            if let Ok(mut outbound) = TcpStream::connect(&target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                        t.lock().unwrap().push(task.abort_handle());
                    }
                    BLACKHOLE => h.lock().unwrap().push(inbound),
                    _ => drop(inbound),
                }
            }
        });
        Self { port, mode, tasks, held }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        if mode != FORWARD {
            for t in self.tasks.lock().unwrap().drain(..) {
                t.abort();
            }
        }
        if mode != BLACKHOLE {
            self.held.lock().unwrap().clear();
        }
    }
}

async fn ready(s: &Server) -> (u16, Value, Duration) {
    let start = Instant::now();
    let r = s.http.get(s.url("/ready")).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap(), start.elapsed())
}

async fn eventually_ready(s: &Server) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, _) = ready(s).await;
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn ready_on_sqlite() {
    let s = Server::start(&[]).await;
    let (status, body, _) = ready(&s).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn ready_follows_the_database() {
    let Some(mysql) = server_url() else {
        eprintln!("GOTRUE_TEST_MYSQL_URL unset: skipping the MySQL readiness test");
        return;
    };
    let scratch = ScratchDb::create(&mysql, "gt_ops_").await;
    let target = format!("{}:{}", mysql.host_str().unwrap(), mysql.port().unwrap_or(3306));
    let relay = Relay::start(target).await;
    let mut url = scratch.url();
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(relay.port)).unwrap();
    let s = Server::start(&[
        ("GOTRUE_DB_DRIVER", "mysql"),
        ("DATABASE_URL", url.as_str()),
        ("GOTRUE_DB_AUTOMIGRATE", "true"),
        ("GOTRUE_JWT_SECRET", "ops-ready-test-secret-0123456789abcdef"),
    ])
    .await;
    let (status, body, _) = ready(&s).await;
    assert_eq!((status, &body["status"]), (200, &Value::from("ok")));

    // Connections cut and new ones refused.
    relay.set(REFUSE);
    let (status, body, took) = ready(&s).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], 503);
    assert!(body["msg"].as_str().is_some_and(|m| m.starts_with("Database")), "{body}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    // /health does not depend on the database.
    let r = s.http.get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // A database that accepts but never answers: refused after the 2-second limit, not later.
    relay.set(BLACKHOLE);
    let (status, body, took) = ready(&s).await;
    assert_eq!(status, 503, "{body}");
    assert!(took >= Duration::from_millis(1500) || body["msg"] == "Database is not reachable", "{took:?} {body}");
    assert!(took < Duration::from_millis(3500), "{took:?}");

    relay.set(FORWARD);
    eventually_ready(&s).await;
    drop(s);
    drop(scratch);
}
