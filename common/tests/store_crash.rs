//! Durability under `kill -9`: a child process writes in a loop from several threads and reports
//! each write once `commit` returned; it is killed with SIGKILL at a random moment; the store is
//! reopened and every write reported durable must be there, intact. Repeated 20 times on the
//! same store, so recovery from each crash is also exercised by the next round.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use lienthong_common::store::Store;

const CHILD_DIR: &str = "LT_STORE_CRASH_CHILD_DIR";
const CHILD_ROUND: &str = "LT_STORE_CRASH_CHILD_ROUND";
const WRITERS: usize = 4;
const ROUNDS: usize = 20;

fn value(round: usize, writer: usize, i: usize) -> Vec<u8> {
    let seed = format!("{round}/{writer}/{i}:");
    seed.as_bytes().iter().copied().cycle().take(4096).collect()
}

fn key(round: usize, writer: usize, i: usize) -> Vec<u8> {
    format!("crash/{round:02}/{writer}/{i:08}").into_bytes()
}

/// The writer. Does nothing unless started by the test below with its environment variables.
#[test]
fn crash_child_writer() {
    let (Ok(dir), Ok(round)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_ROUND)) else {
        return;
    };
    let round: usize = round.parse().unwrap();
    let store = Store::open(std::path::Path::new(&dir)).unwrap();
    let out = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            let out = out.clone();
            std::thread::spawn(move || {
                for i in 0.. {
                    store
                        .put_raw(&key(round, w, i), &value(round, w, i))
                        .unwrap();
                    let _persisted = store.commit_blocking().unwrap();
                    let mut o = out.lock().unwrap();
                    writeln!(o, "durable {w} {i}").unwrap();
                    o.flush().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

#[test]
fn sigkill_loses_no_write_reported_durable() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut total = 0usize;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut reported = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split_whitespace();
                if parts.next() == Some("durable") {
                    let w: usize = parts.next().unwrap().parse().unwrap();
                    let i: usize = parts.next().unwrap().parse().unwrap();
                    reported.push((w, i));
                }
            }
            reported
        });
        // Let the child open the store and write for a random while, then SIGKILL it.
        std::thread::sleep(Duration::from_millis(150 + fastrand_ms(round)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let reported = reader.join().unwrap();

        let store = Store::open(dir.path()).unwrap();
        store.check().unwrap();
        for (w, i) in &reported {
            let got = store.get_raw(&key(round, *w, *i)).unwrap();
            assert_eq!(
                got.as_deref(),
                Some(value(round, *w, *i).as_slice()),
                "round {round}: write {w}/{i} was reported durable but is missing or corrupt"
            );
        }
        total += reported.len();
        drop(store);
    }
    assert!(
        total > ROUNDS,
        "the child wrote too little to test anything ({total} writes)"
    );
    eprintln!("{ROUNDS} kills, {total} durable writes checked");
}

/// A pseudo-random delay (0–400 ms) that differs per round without a random-number crate.
fn fastrand_ms(round: usize) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (u64::from(nanos) ^ (round as u64 * 7919)) % 400
}
