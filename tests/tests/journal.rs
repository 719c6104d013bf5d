//! Under systemd (stderr is the stream `JOURNAL_STREAM` names) the services
//! log to journald natively, fields and priority intact; anywhere else as
//! plain text on stderr. The journal here is a datagram socket bound where
//! journald's lives, read with its native protocol, since this machine runs
//! no systemd.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wayside_e2e::{binary, free_port};

const JOURNAL: &str = "/run/systemd/journal/socket";

/// One native-protocol datagram: `KEY=value\n`, or for values with a
/// newline `KEY\n`, a little-endian u64 length, the bytes, `\n`.
fn fields(mut d: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    while let Some(nl) = d.iter().position(|b| *b == b'\n') {
        let line = &d[..nl];
        if let Some(eq) = line.iter().position(|b| *b == b'=') {
            let key = String::from_utf8_lossy(&line[..eq]).to_string();
            out.insert(key, String::from_utf8_lossy(&line[eq + 1..]).to_string());
            d = &d[nl + 1..];
        } else {
            let key = String::from_utf8_lossy(line).to_string();
            let len = u64::from_le_bytes(d[nl + 1..nl + 9].try_into().unwrap()) as usize;
            let value = &d[nl + 9..nl + 9 + len];
            out.insert(key, String::from_utf8_lossy(value).to_string());
            d = &d[nl + 9 + len + 1..];
        }
    }
    out
}

/// `wayside-data serve` with stderr to `stderr` and `JOURNAL_STREAM` set.
fn serve(dir: &Path, stderr: File, journal_stream: &str) -> Child {
    Command::new(binary("wayside-data"))
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("JOURNAL_STREAM", journal_stream)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Removes the socket file even when the test fails.
struct Bound(UnixDatagram);

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(JOURNAL);
    }
}

#[test]
fn under_systemd_logs_go_to_the_journal_with_their_fields() {
    if Path::new(JOURNAL).exists() {
        eprintln!("SKIPPED: a journald owns {JOURNAL} on this machine; not replacing it");
        return;
    }
    std::fs::create_dir_all(Path::new(JOURNAL).parent().unwrap()).unwrap();
    let journal = Bound(UnixDatagram::bind(JOURNAL).unwrap());
    journal
        .0
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();

    // stderr is the stream systemd named: the journal gets the events.
    let path = tmp.path().join("stderr-journal.log");
    let stderr = File::create(&path).unwrap();
    let m = stderr.metadata().unwrap();
    let mut child = serve(tmp.path(), stderr, &format!("{}:{}", m.dev(), m.ino()));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = vec![0u8; 64 * 1024];
    let listening = loop {
        assert!(
            Instant::now() < deadline,
            "no 'listening' event in the journal"
        );
        let Ok(n) = journal.0.recv(&mut buf) else {
            continue;
        };
        let f = fields(&buf[..n]);
        if f.get("MESSAGE").is_some_and(|m| m.contains("listening")) {
            break f;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        listening["SYSLOG_IDENTIFIER"], "wayside-data",
        "{listening:?}"
    );
    // info is the journal's "notice".
    assert_eq!(listening["PRIORITY"], "5", "{listening:?}");
    assert!(
        listening
            .get("F_LOCAL")
            .is_some_and(|v| v.starts_with("127.0.0.1:")),
        "the event's field is a journal field: {listening:?}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("listening"), "also on stderr: {text}");

    // stderr redirected elsewhere (a wrapper, a terminal): plain text.
    let path = tmp.path().join("stderr-plain.log");
    let mut child = serve(tmp.path(), File::create(&path).unwrap(), "1:1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&path)
        .unwrap()
        .contains("listening")
    {
        assert!(Instant::now() < deadline, "nothing on stderr");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}
