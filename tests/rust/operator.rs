//! What an operator relies on when keepd runs as a service: a clean stop
//! leaves `data.db` complete by itself; the data dir is checked whole at
//! start; the tools run with the service's database key; a plaintext
//! socket on a public address is called out.

use crate::common::*;
use serde_json::json;
use std::time::Duration;

fn sigterm(pid: u32) {
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill -TERM");
    assert!(st.success(), "kill -TERM {pid}");
}

/// After SIGTERM the WAL is checkpointed into `data.db`: a copy of
/// `data.db` alone, opened by plain SQLite, has every table and row.
#[test]
fn a_clean_stop_leaves_data_db_complete_without_its_wal() {
    if is_reference() {
        return;
    }
    let mut srv = TestServer::start();
    srv.create_collection(&json!({
        "name": "notes", "type": "base", "createRule": "",
        "fields": [{"name": "t", "type": "text"}]
    }));
    for i in 0..20 {
        let (st, v) = srv.guest().post(
            "/api/collections/notes/records",
            &json!({ "t": format!("note {i}") }),
        );
        assert_eq!(st, 200, "{v}");
    }
    sigterm(srv.pid());
    assert!(
        wait_until(Duration::from_secs(30), || !srv.is_running()),
        "keepd did not stop on SIGTERM:\n{}",
        srv.output()
    );
    // Only data.db: no -wal, no -shm beside it.
    let copy = TempRoot::new("stopcopy");
    let db = copy.path.join("data.db");
    std::fs::copy(srv.db_path(), &db).expect("copy data.db");
    let c = rusqlite::Connection::open(&db).expect("open the copy");
    let n: i64 = c
        .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap_or_else(|e| {
            panic!(
                "data.db alone lacks the data ({e}); server output:\n{}",
                srv.output()
            )
        });
    assert_eq!(n, 20);
    let su: i64 = c
        .query_row("SELECT count(*) FROM _superusers", [], |r| r.get(0))
        .expect("superusers");
    assert_eq!(su, 1);
    let wal = srv.dir.join("data.db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_len, 0, "the WAL is truncated at a clean stop");
}
