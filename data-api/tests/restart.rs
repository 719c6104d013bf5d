//! Durability: spawns the real `wayside-data` binary, ingests faces (past
//! `exact_below`, so searches go through the binary codes), plates and
//! media, kills it with SIGKILL, restarts it on the same data dir and finds
//! everything again.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::{face, ids, plate, vector};
use serde_json::{Value, json};

struct Proc {
    child: Child,
    base: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(config: &std::path::Path) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wayside-data"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn wayside-data");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read first line");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    Proc { child, base }
}

async fn post(c: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = c.post(url).json(&body).send().await.expect("post");
    let st = r.status().as_u16();
    (st, r.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg_path = dir.path().join("wayside-data.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n[search]\nexact_below = 50\nmax_k = 10\ndefault_k = 5\nrescore = 20\n",
            dir.path().join("data")
        ),
    )
    .expect("write config");
    let c = reqwest::Client::new();

    let p = spawn(&cfg_path);
    let faces: Vec<Value> = (0..120)
        .map(|i| {
            face(
                &format!("f{i}"),
                vector(i, 0.02),
                i as u64 * 1000,
                "cam",
                "2026-11-24T08:00:00Z",
            )
        })
        .collect();
    for chunk in faces.chunks(40) {
        let (st, b) = post(
            &c,
            format!("{}/faces", p.base),
            Value::Array(chunk.to_vec()),
        )
        .await;
        assert_eq!(st, 200, "{b}");
    }
    let (st, _) = post(
        &c,
        format!("{}/plates", p.base),
        plate("p0", "粤B 12345", "cam", "2026-11-24T08:00:00Z"),
    )
    .await;
    assert_eq!(st, 201);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"\xFF\xD8\xFFpersist".to_vec()).file_name("a.jpg"),
    );
    let media: Value = c
        .post(format!("{}/media", p.base))
        .multipart(form)
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("json");
    let name = media["name"].as_str().expect("name").to_string();
    drop(p); // SIGKILL: Child::kill sends SIGKILL on Unix.

    let p = spawn(&cfg_path);
    for probe in [0usize, 57, 119] {
        let (st, b) = post(
            &c,
            format!("{}/search-face", p.base),
            json!({"face_vector": vector(probe, 0.02), "k": 3}),
        )
        .await;
        assert_eq!(st, 200, "{b}");
        assert_eq!(ids(&b)[0], format!("f{probe}"), "{b}");
    }
    let (_, b) = post(
        &c,
        format!("{}/search-licence-plate", p.base),
        json!({"licence_plate": "粤B12345"}),
    )
    .await;
    assert_eq!(ids(&b), ["p0"]);
    let (st, b) = post(&c, format!("{}/faces", p.base), faces[3].clone()).await;
    assert_eq!(
        (st, b["created"].clone()),
        (200, json!(false)),
        "retry after restart is not a duplicate"
    );
    let r = c
        .get(format!("{}/media/{name}", p.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().await.expect("bytes").as_ref(),
        b"\xFF\xD8\xFFpersist"
    );
}
