//! POST /video and /video-streaming against the real daemon on 127.0.0.1,
//! with real clips: the happy paths, and every kind of bad upload answered
//! with its status and a JSON error while the server keeps serving.

use reqwest::multipart::{Form, Part};
use reqwest::{Client, StatusCode};
use serde_json::Value;
use wayside_e2e::{Daemon, Tmpfs, media};

/// Limits small enough to breach with the test clips.
const LIMITS: &str = "max_upload_bytes = 16000000\nmax_jobs = 1\n[video]\nmax_duration_s = 60\n";

fn form(video: Option<(&str, Vec<u8>)>, interval: Option<&str>) -> Form {
    let mut f = Form::new();
    if let Some((name, bytes)) = video {
        f = f.part("video", Part::bytes(bytes).file_name(name.to_string()));
    }
    if let Some(i) = interval {
        f = f.text("interval", i.to_string());
    }
    f
}

fn clip(name: &str) -> Vec<u8> {
    std::fs::read(media(name)).unwrap()
}

/// POST the clip `name` with `interval` to `path` (`/video`, `/video-streaming`…).
async fn upload(d: &Daemon, path: &str, name: &str, interval: &str) -> reqwest::Response {
    Client::new()
        .post(d.url(path))
        .multipart(form(Some((name, clip(name))), Some(interval)))
        .send()
        .await
        .unwrap()
}

async fn error_of(res: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["content-type"], "application/json");
    let v: Value = res.json().await.unwrap();
    v["error"].as_str().expect("error field").to_string()
}

#[tokio::test]
async fn video_counts_and_serves_the_annotated_video() {
    let d = Daemon::start(LIMITS).await;
    let c = Client::new();
    let res = upload(&d, "/video", "otvision-cars-truck.mp4", "500").await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    let len = |k: &str| {
        v[k].as_array()
            .unwrap_or_else(|| panic!("{k} missing: {v}"))
            .len()
    };
    // 3 s at 500 ms: samples at 0, 500, … 2500.
    assert_eq!(len("pedestrian_counts"), 6, "{v}");
    for k in [
        "vehicle_counts",
        "pedestrians_per_interval",
        "vehicles_per_interval",
    ] {
        assert_eq!(len(k), 6, "{k}: {v}");
    }
    let max_vehicles = v["vehicle_counts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .max();
    assert!(
        max_vehicles >= Some(1),
        "no vehicle seen in a traffic clip: {v}"
    );

    let url = v["processed_video_url"].as_str().unwrap();
    assert!(
        url.starts_with(&d.url("/media/")) && url.ends_with(".mp4"),
        "{url}"
    );
    let full = c.get(url).send().await.unwrap();
    assert_eq!(full.status(), StatusCode::OK);
    let body = full.bytes().await.unwrap();
    assert!(
        body.len() > 10_000,
        "annotated video of {} bytes",
        body.len()
    );
    assert_eq!(&body[4..8], b"ftyp");
    let ranged = c
        .get(url)
        .header("Range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.bytes().await.unwrap().len(), 100);
    // Content-addressed names only.
    let res = c
        .get(d.url("/media/..%2F..%2Fetc%2Fpasswd"))
        .send()
        .await
        .unwrap();
    error_of(res, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn streaming_sends_one_line_per_sample_as_it_goes() {
    let d = Daemon::start(LIMITS).await;
    let mut res = upload(&d, "/video-streaming", "bikes.mp4", "1000").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let (mut buf, mut lines, mut arrivals) = (Vec::new(), Vec::new(), Vec::new());
    let started = std::time::Instant::now();
    while let Some(chunk) = res.chunk().await.unwrap() {
        buf.extend_from_slice(&chunk);
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            lines.push(serde_json::from_slice::<Value>(&line).expect("each line is JSON"));
            arrivals.push(started.elapsed());
        }
    }
    assert_eq!(lines.len(), 10, "10 s at 1000 ms");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["timestamp"], i as u64 * 1000, "{l}");
        assert!(
            l["frame_base64"]
                .as_str()
                .unwrap()
                .starts_with("data:image/jpeg;base64,/9j/")
        );
        for k in [
            "people_count",
            "vehicle_count",
            "pedestrians_per_interval",
            "vehicles_per_interval",
        ] {
            assert!(l[k].is_u64(), "{k} in {l}");
        }
    }
    // Streamed, not buffered: the first line came well before the last.
    assert!(
        arrivals[0] < arrivals[9].mul_f32(0.8),
        "arrivals {arrivals:?}"
    );
}

#[tokio::test]
async fn a_streamed_summary_is_also_kept_as_a_job() {
    let d = Daemon::start(LIMITS).await;
    let res = upload(
        &d,
        "/video-streaming?summary=true",
        "otvision-cars-truck.mp4",
        "1000",
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let summary = &last["summary"];
    let id = summary["job_id"]
        .as_str()
        .expect("the summary names its job");
    let job: Value = Client::new()
        .get(d.url(&format!("/jobs/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(&job["result"], summary);
    let video = Client::new()
        .get(summary["processed_video_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(video.status(), StatusCode::OK);
}

#[tokio::test]
async fn streaming_speaks_sse_when_asked() {
    let d = Daemon::start(LIMITS).await;
    let res = Client::new()
        .post(d.url("/video-streaming"))
        .header("Accept", "text/event-stream")
        .multipart(form(
            Some(("cars.mp4", clip("otvision-cars-cyclist.mp4"))),
            Some("1000"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let text = res.text().await.unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 3, "{text:.300}");
    assert!(events.iter().all(|e| e.starts_with("data: {\"")));
}

/// POST a multipart upload of `size` bytes while reading the answer at the
/// same time: the server refuses an oversized upload before it has all been
/// sent, and closes the connection, so a client that only reads after
/// writing never sees the answer.
async fn post_while_reading(d: &Daemon, size: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = d.base.trim_start_matches("http://").to_string();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let boundary = "wayside-test-boundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"interval\"\r\n\r\n500\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"big.mp4\"\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let length = head.len() + size + tail.len();
    let request = format!(
        "POST /video HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n{head}"
    );
    let writer = tokio::spawn(async move {
        wr.write_all(request.as_bytes()).await?;
        let chunk = vec![0u8; 1 << 16];
        for _ in 0..size / chunk.len() {
            wr.write_all(&chunk).await?;
        }
        wr.write_all(&chunk[..size % chunk.len()]).await?;
        wr.write_all(tail.as_bytes()).await
    });
    let mut answer = Vec::new();
    let _ = rd.read_to_end(&mut answer).await;
    writer.abort();
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn bad_uploads_get_json_errors_and_the_server_keeps_serving() {
    let d = Daemon::start(LIMITS).await;
    let c = Client::new();
    let post = |f: Form| c.post(d.url("/video")).multipart(f).send();
    let small = || Some(("cars.mp4", clip("otvision-cars-truck.mp4")));

    let e = error_of(
        post(form(None, Some("500"))).await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(e.contains("video is required"), "{e}");
    let e = error_of(
        post(form(small(), None)).await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(e.contains("interval is required"), "{e}");
    for bad in ["0", "-100", "abc", "1.5", ""] {
        let e = error_of(
            post(form(small(), Some(bad))).await.unwrap(),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(
            e.contains("interval must be a positive integer"),
            "{bad:?}: {e}"
        );
    }
    let text = Some((
        "clip.mp4",
        b"just some text, not a video at all\n".repeat(100),
    ));
    error_of(
        post(form(text, Some("500"))).await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;

    let mut truncated = clip("bikes.mp4");
    truncated.truncate(truncated.len() / 3);
    let res = post(form(Some(("cut.mp4", truncated)), Some("500")))
        .await
        .unwrap();
    let status = res.status();
    assert!(
        status == StatusCode::UNPROCESSABLE_ENTITY,
        "truncated video answered {status}"
    );

    let (status, body) = post_while_reading(&d, 17_000_000).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    let long = Some(("long.avi", clip("vtest.avi")));
    let e = error_of(
        post(form(long, Some("500"))).await.unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert!(e.contains("the limit is 60 s"), "{e}");
    let res = c.post(d.url("/video")).body("{}").send().await.unwrap();
    error_of(res, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    for path in ["/video?wait=perhaps", "/video-streaming?summary=2"] {
        let res = c.post(d.url(path)).multipart(form(small(), Some("500")));
        let e = error_of(res.send().await.unwrap(), StatusCode::BAD_REQUEST).await;
        assert!(e.contains("query string"), "{path}: {e}");
    }

    // Still serving.
    let res = post(form(small(), Some("1000"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_full_house_answers_503_and_a_waiting_client_can_leave() {
    let d = Daemon::start(LIMITS).await;
    let c = Client::new();
    // A stream nobody reads holds the only job slot (back-pressure).
    let held = upload(&d, "/video-streaming", "bikes.mp4", "40").await;
    assert_eq!(held.status(), StatusCode::OK);
    let res = upload(&d, "/video", "otvision-cars-truck.mp4", "500").await;
    assert_eq!(res.headers()["retry-after"], "5");
    error_of(res, StatusCode::SERVICE_UNAVAILABLE).await;
    drop(held); // the reader leaves: the job is cancelled and its slot freed

    // Asynchronous job: 202 at once, then the same body from /jobs/{id}.
    let mut accepted = None;
    for _ in 0..100 {
        let res = upload(&d, "/video?wait=false", "otvision-cars-truck.mp4", "500").await;
        if res.status() == StatusCode::ACCEPTED {
            accepted = Some(res.json::<Value>().await.unwrap());
            break;
        }
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let accepted = accepted.expect("the slot was freed after the reader left");
    let status_url = d.url(accepted["status_url"].as_str().unwrap());
    for _ in 0..600 {
        let v: Value = c
            .get(&status_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        match v["status"].as_str().unwrap() {
            "running" => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            "done" => {
                assert_eq!(
                    v["result"]["pedestrian_counts"].as_array().unwrap().len(),
                    6,
                    "{v}"
                );
                return;
            }
            other => panic!("job ended {other}: {v}"),
        }
    }
    panic!("job did not finish in 60 s");
}

/// The spool directory full (a 1 MiB tmpfs mounted over it): the upload
/// gets 507 with a JSON error, the spool is left empty, and the server
/// keeps serving. Needs root to mount; says so and passes without it.
#[tokio::test]
async fn a_full_disk_is_a_507_and_nothing_is_left_behind() {
    let d = Daemon::start("").await;
    let spool = d.dir.path().join("spool");
    let Some(tmpfs) = Tmpfs::mount(&spool, "1m", "a_full_disk_is_a_507") else {
        return;
    };
    // The server answers before the 4 MB are all sent.
    let (status, text) = post_while_reading(&d, 4 << 20).await;
    assert_eq!(status, 507, "{text}");
    assert!(text.contains("application/json"), "{text}");
    assert!(text.contains("no space left"), "{text}");
    let left: Vec<_> = std::fs::read_dir(&spool).unwrap().collect();
    let ok = reqwest::get(d.url("/healthz")).await.unwrap().status();
    drop(tmpfs);
    assert!(left.is_empty(), "spool files left behind: {left:?}");
    assert!(ok.is_success());
}
