//! Live cameras and MQTT against real servers: a Mosquitto broker started
//! here on a free port, a local RTSP server (gst-rtsp-server) serving a
//! real clip, and the daemon counting the people in vtest.avi (opencv-doc)
//! as if it were a camera.
//!
//! Inference stays cheap: 2 s windows, the default 5 tracked frames a
//! second, and clips cut to the first seconds of vtest.avi.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use wayside_e2e::{
    Daemon, DataApi, Mosquitto, MqttWatch, RtspServer, TestCa, eventually, free_port, healthz,
    metric, plate_clip, vtest_clip, vtest_h265_clip, vtest_mjpeg_clip, wait_for_port,
};

const WINDOW_MS: u64 = 2000;

fn camera(health: &Value, name: &str) -> Value {
    health["cameras"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no camera {name} in {health}"))
}

/// 10 frames a second, 5 tracked: the frames the schedule does not want
/// are dropped as they are decoded, before their conversion to RGB, or
/// before decoding. Returns (converted, decoded, undecoded).
async fn most_frames_left_unconverted(daemon: &Daemon, name: &str) -> (u64, u64, u64) {
    let count = |what: &str| format!("wayside_camera_frames_{what}_total{{camera=\"{name}\"}}");
    let converted = daemon.metric(&count("converted")).await;
    let decoded = daemon.metric(&count("decoded")).await;
    let undecoded = daemon.metric(&count("undecoded")).await;
    assert!(
        converted * 10 < (decoded + undecoded) * 9,
        "{name}: {converted} of {decoded} frames converted, {undecoded} not decoded"
    );
    (converted, decoded, undecoded)
}

#[tokio::test(flavor = "multi_thread")]
async fn file_camera_counts_reach_mqtt_and_status_goes_offline_on_kill() {
    let started = Instant::now();
    let broker = Mosquitto::start();
    let scratch = tempfile::tempdir().unwrap();
    let clip = vtest_clip(scratch.path(), 12);
    let watch = MqttWatch::subscribe(broker.port, "wayside/e2e-box/#");
    let daemon = Daemon::start(&format!(
        "[mqtt]\nurl = \"{}\"\ndevice = \"e2e-box\"\nkeepalive_s = 5\n\
         [[camera]]\nname = \"lab\"\nsource = \"file:{}\"\nwindow_ms = {WINDOW_MS}\n",
        broker.url(),
        clip.display()
    ))
    .await;

    let seen = watch
        .wait_for("wayside/e2e-box/status", "online", Duration::from_secs(20))
        .expect("status online");
    assert!(seen.iter().all(|(t, _)| t == "wayside/e2e-box/status"));

    // Seven windows: the clip's first 12 s and the start of its replay.
    let mut windows: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while windows.len() < 7 {
        let left = deadline.saturating_duration_since(Instant::now());
        let (topic, payload) = watch
            .next(left)
            .unwrap_or_else(|| panic!("only {} windows: {windows:?}", windows.len()));
        assert_eq!(topic, "wayside/e2e-box/lab/counts", "{payload}");
        windows.push(serde_json::from_str(&payload).expect("counts are JSON"));
    }
    for w in &windows {
        for field in [
            "ts",
            "window_ms",
            "people_count",
            "vehicle_count",
            "pedestrians_per_interval",
            "vehicles_per_interval",
            "per_class",
        ] {
            assert!(!w[field].is_null(), "{field} missing in {w}");
        }
        assert_eq!(w["window_ms"], WINDOW_MS);
        assert_eq!(
            w["ts"].as_u64().unwrap() % WINDOW_MS,
            0,
            "windows on the grid"
        );
        // vtest.avi has no vehicle moving.
        assert_eq!(w["vehicles_per_interval"], 0, "{w}");
    }
    for pair in windows.windows(2) {
        let (a, b) = (
            pair[0]["ts"].as_u64().unwrap(),
            pair[1]["ts"].as_u64().unwrap(),
        );
        assert_eq!(
            b,
            a + WINDOW_MS,
            "windows in order, none missing: {windows:?}"
        );
    }
    let people_seen = windows
        .iter()
        .filter(|w| w["people_count"].as_u64() > Some(0))
        .count();
    assert!(people_seen >= 4, "people in the frame: {windows:?}");
    let passed: u64 = windows
        .iter()
        .map(|w| w["pedestrians_per_interval"].as_u64().unwrap())
        .sum();
    // 7 people walk in the first 10 s (fixtures/vtest.toml); the first
    // window is partial, and the replay adds its own.
    assert!((3..=16).contains(&passed), "{passed} passed: {windows:?}");
    let per_class: u64 = windows
        .iter()
        .filter_map(|w| w["per_class"]["person"].as_u64())
        .sum();
    assert_eq!(per_class, passed);

    let h = healthz(&daemon.base).await;
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(camera(&h, "lab")["up"], true, "{h}");
    assert_eq!(h["mqtt"]["connected"], true, "{h}");
    // The broker may pass a message on before the box has its PUBACK.
    let base = daemon.base.clone();
    eventually(Duration::from_secs(5), "7 PUBACKs counted", || async {
        metric(&base, "wayside_mqtt_published_total").await >= 7
    })
    .await;
    assert_eq!(daemon.metric("wayside_camera_up{camera=\"lab\"}").await, 1);
    // Windows follow the wall clock and the first one is partial: seven of
    // them can close before the 12 s clip has played to its end, all the
    // more when detection runs behind real time.
    eventually(Duration::from_secs(20), "the clip replayed", || async {
        metric(&base, "wayside_camera_loops_total{camera=\"lab\"}").await >= 1
    })
    .await;
    assert!(
        daemon
            .metric("wayside_camera_stage_seconds_count{stage=\"detect\"}")
            .await
            >= 20
    );
    // A file played as a camera, though its sink holds each frame until
    // its time.
    most_frames_left_unconverted(&daemon, "lab").await;

    // The web page's view: the latest annotated frame and the last window.
    let views: Value = reqwest::get(daemon.url("/cameras"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lab = &views["cameras"][0];
    assert_eq!(lab["name"], "lab", "{views}");
    assert!(lab["preview"]["people_count"].is_u64(), "{views}");
    assert!(
        lab["last_window"]["ts"].as_u64() >= windows[6]["ts"].as_u64(),
        "{views}"
    );
    let res = reqwest::get(daemon.url(lab["preview"]["url"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let picture = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
    assert_eq!((picture.width(), picture.height()), (768, 576));
    let res = reqwest::get(daemon.url("/cameras/nowhere/preview.jpg"))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let e: Value = res.json().await.unwrap();
    assert!(e["error"].as_str().unwrap().contains("nowhere"), "{e}");
    assert!(
        daemon
            .metric("wayside_camera_stage_seconds_count{stage=\"annotate\"}")
            .await
            >= 5
    );

    let _dir = daemon.kill();
    let killed = Instant::now();
    watch
        .wait_for("wayside/e2e-box/status", "offline", Duration::from_secs(15))
        .expect("the last will says offline");
    eprintln!(
        "offline {:?} after kill -9; test took {:?}",
        killed.elapsed(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rtsp_camera_recovers_when_its_server_comes_back() {
    let started = Instant::now();
    let scratch = tempfile::tempdir().unwrap();
    let clip = vtest_clip(scratch.path(), 40);
    let port = free_port();
    let server = RtspServer::start(port, &clip);
    let mjpeg_port = free_port();
    let _mjpeg_server = RtspServer::start(mjpeg_port, &vtest_mjpeg_clip(scratch.path(), 40));
    let h265_port = free_port();
    let _h265_server = RtspServer::start(h265_port, &vtest_h265_clip(scratch.path(), 40));
    let daemon = Daemon::start(&format!(
        "[[camera]]\nname = \"gate\"\nsource = \"rtsp://127.0.0.1:{port}/clip\"\n\
         window_ms = {WINDOW_MS}\nstall_timeout_ms = 3000\nreconnect_min_ms = 300\nreconnect_max_ms = 2000\n\
         [[camera]]\nname = \"lobby\"\nsource = \"rtsp://127.0.0.1:{mjpeg_port}/clip\"\n\
         window_ms = {WINDOW_MS}\n\
         [[camera]]\nname = \"street\"\nsource = \"rtsp://127.0.0.1:{h265_port}/clip\"\n\
         window_ms = {WINDOW_MS}\n\
         [[camera]]\nname = \"wrong-path\"\nsource = \"rtsp://127.0.0.1:{port}/nothing-here\"\n\
         window_ms = {WINDOW_MS}\nreconnect_min_ms = 300\nreconnect_max_ms = 2000\n"
    ))
    .await;
    let base = daemon.base.clone();
    let windows = || metric(&base, "wayside_camera_windows_total{camera=\"gate\"}");

    eventually(Duration::from_secs(30), "two windows from RTSP", || async {
        windows().await >= 2
    })
    .await;
    let h = healthz(&daemon.base).await;
    assert_eq!(camera(&h, "gate")["up"], true, "{h}");
    // A URL the server does not serve: down, with the reason, and counted.
    let wrong = camera(&h, "wrong-path");
    assert_eq!(wrong["up"], false, "{h}");
    assert!(
        wrong["error"]
            .as_str()
            .unwrap_or("")
            .contains("nothing-here"),
        "{h}"
    );
    assert!(
        daemon
            .metric("wayside_camera_errors_total{camera=\"wrong-path\"}")
            .await
            >= 1
    );
    assert_eq!(h["status"], "degraded", "{h}");

    drop(server);
    let down_at = Instant::now();
    eventually(
        Duration::from_secs(15),
        "camera down after the server died",
        || async { camera(&healthz(&base).await, "gate")["up"] == false },
    )
    .await;
    let detected = down_at.elapsed();
    let before = windows().await;

    let server = RtspServer::start(port, &clip);
    let back_at = Instant::now();
    eventually(Duration::from_secs(30), "camera up again", || async {
        camera(&healthz(&base).await, "gate")["up"] == true
    })
    .await;
    let recovered = back_at.elapsed();
    eventually(Duration::from_secs(20), "windows resume", || async {
        windows().await >= before + 2
    })
    .await;
    let reconnects = daemon
        .metric("wayside_camera_reconnects_total{camera=\"gate\"}")
        .await;
    assert!(reconnects >= 1);
    let (converted, decoded, _) = most_frames_left_unconverted(&daemon, "gate").await;
    // A Motion JPEG camera's frames need no other: the half the schedule
    // does not want are not even decoded. (x264's B-frames would be too,
    // but the decoder holds them a few frames to put them in order, by
    // which time the schedule wants most of them.)
    let (_, jpeg_decoded, jpeg_undecoded) = most_frames_left_unconverted(&daemon, "lobby").await;
    assert!(
        jpeg_undecoded * 2 > jpeg_decoded,
        "lobby: {jpeg_undecoded} frames not decoded, {jpeg_decoded} decoded"
    );
    // An H.265 camera (as many roadside IP cameras stream) is analysed
    // like the others; its unreferenced B-frames are held by the decoder
    // to be put in order, as H.264's are, so few escape decoding.
    let street = metric(&base, "wayside_camera_windows_total{camera=\"street\"}").await;
    assert!(street >= 2, "street: {street} windows from H.265 over RTSP");
    let (_, h265_decoded, h265_undecoded) = most_frames_left_unconverted(&daemon, "street").await;
    // Read after: a frame converted is analysed soon after.
    let analysed = daemon
        .metric("wayside_camera_frames_analysed_total{camera=\"gate\"}")
        .await;
    assert!(analysed >= 4);
    // A live camera converts the frames it analyses and no more, even when
    // analysis falls behind (it keeps up here; the bench of six cameras on
    // two cores does not); a connection may leave a few unanalysed (those
    // before its rule was set, those in the sink when it broke).
    assert!(
        converted <= analysed + 3 * (reconnects + 1),
        "{converted} frames converted, {analysed} analysed, {reconnects} reconnects"
    );
    drop(server);
    eprintln!(
        "down seen after {detected:?}, up {recovered:?} after restart; {converted} of {decoded} \
         frames converted, {analysed} analysed; lobby: {jpeg_undecoded} of {} frames not decoded; street (H.265): \
         {h265_undecoded} of {} not decoded; test took {:?}",
        jpeg_decoded + jpeg_undecoded,
        h265_decoded + h265_undecoded,
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_camera_and_refused_credentials_leave_http_serving() {
    // No anonymous clients and no password file: every login is refused.
    let broker = Mosquitto::start_with("allow_anonymous false\n");
    let dead_port = free_port();
    let daemon = Daemon::start_logged(&format!(
        "[mqtt]\nurl = \"{}\"\ndevice = \"e2e-refused\"\nusername = \"box\"\npassword = \"wrong\"\n\
         [[camera]]\nname = \"unreachable\"\nsource = \"rtsp://127.0.0.1:{dead_port}/stream\"\nreconnect_min_ms = 200\n\
         [[camera]]\nname = \"unplugged\"\nsource = \"v4l2:/dev/video97\"\nreconnect_min_ms = 200\n",
        broker.url()
    ))
    .await;
    let base = daemon.base.clone();
    eventually(Duration::from_secs(10), "failures counted", || async {
        metric(&base, "wayside_camera_errors_total{camera=\"unreachable\"}").await >= 2
            && metric(&base, "wayside_mqtt_connect_errors_total").await >= 1
    })
    .await;
    let h = healthz(&daemon.base).await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(camera(&h, "unreachable")["up"], false, "{h}");
    assert_eq!(camera(&h, "unplugged")["up"], false, "{h}");
    assert!(
        camera(&h, "unplugged")["error"]
            .as_str()
            .unwrap_or("")
            .contains("/dev/video97"),
        "{h}"
    );
    assert_eq!(h["mqtt"]["connected"], false, "{h}");
    assert!(
        h["mqtt"]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("refused"),
        "{h}"
    );
    assert_eq!(daemon.metric("wayside_camera_up").await, 0);
    assert_eq!(daemon.metric("wayside_mqtt_connected").await, 0);
    let views: Value = reqwest::get(daemon.url("/cameras"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for c in views["cameras"].as_array().unwrap() {
        assert_eq!(c["up"], false, "{views}");
        assert!(c["preview"].is_null(), "no frame, no picture: {views}");
    }
    // The rest of the API still answers.
    let res = reqwest::Client::new()
        .post(daemon.url("/licence-plate"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let log = daemon.log();
    assert!(log.contains("broker refused the connection"), "{log}");
    assert!(
        log.contains("camera down: cannot open rtsp://127.0.0.1"),
        "{log}"
    );
    // One line per fault, not one per retry.
    assert_eq!(
        log.matches("broker refused the connection").count(),
        1,
        "{log}"
    );
}

/// MQTT over TLS against a private CA made here: with the CA the box's
/// counts arrive (read back on the broker's plain listener); a box that
/// trusts another CA refuses the broker and says why, and keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn mqtt_over_tls_trusts_the_configured_ca_only() {
    let ca = TestCa::new();
    let (cert, key) = ca.server("broker");
    let tls_port = free_port();
    let broker = Mosquitto::start_with(&format!(
        "allow_anonymous true\n\
         listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
        ca.cert.display(),
        cert.display(),
        key.display()
    ));
    wait_for_port(tls_port);
    let watch = MqttWatch::subscribe(broker.port, "wayside/tls-box/#");
    let config = |device: &str, ca_file: &Path| {
        format!(
            "[mqtt]\nurl = \"mqtts://127.0.0.1:{tls_port}\"\ndevice = \"{device}\"\nca_file = \"{}\"\n\
             [[camera]]\nname = \"pattern\"\nsource = \"test:\"\nwindow_ms = 1000\npreview_ms = 0\n",
            ca_file.display()
        )
    };
    let daemon = Daemon::start(&config("tls-box", &ca.cert)).await;
    watch
        .wait_for("wayside/tls-box/status", "online", Duration::from_secs(20))
        .expect("status online over TLS");
    let (topic, payload) = watch
        .next(Duration::from_secs(20))
        .expect("a window's counts over TLS");
    assert_eq!(topic, "wayside/tls-box/pattern/counts", "{payload}");
    assert_eq!(healthz(&daemon.base).await["mqtt"]["connected"], true);

    let stranger = TestCa::new();
    let refused = Daemon::start(&config("tls-stranger", &stranger.cert)).await;
    let base = refused.base.clone();
    eventually(
        Duration::from_secs(15),
        "the TLS failure counted",
        || async { metric(&base, "wayside_mqtt_connect_errors_total").await >= 1 },
    )
    .await;
    let h = healthz(&refused.base).await;
    assert_eq!(h["mqtt"]["connected"], false, "{h}");
    let why = h["mqtt"]["last_error"].as_str().unwrap_or("");
    assert!(why.contains("TLS"), "{h}");
    assert_eq!(refused.metric("wayside_mqtt_published_total").await, 0);
}

/// A camera reads a plate: the voted plate leaves once on the events topic
/// (no picture, no vector on MQTT) and once through the outbox to the data
/// API, even though the vehicle never drives off (the clip loops).
#[tokio::test(flavor = "multi_thread")]
async fn a_camera_reports_a_plate_on_mqtt_and_to_the_data_api() {
    const PLATE: &str = "苏E5B208";
    let tmp = tempfile::tempdir().unwrap();
    let clip = plate_clip(tmp.path(), PLATE);
    let api = DataApi::start(&tmp.path().join("data"), "127.0.0.1:0", &[]);
    let broker = Mosquitto::start();
    let watch = MqttWatch::subscribe(broker.port, "wayside/plate-box/gate/events");
    let _daemon = Daemon::start(&format!(
        "[mqtt]\nurl = \"{}\"\ndevice = \"plate-box\"\n\
         [data_api]\nurl = \"{}\"\n[plates]\nenabled = true\n\
         [[camera]]\nname = \"gate\"\nsource = \"file:{}\"\nwindow_ms = 2000\npreview_ms = 0\n",
        broker.url(),
        api.base,
        clip.display()
    ))
    .await;
    let (_, payload) = watch
        .next(Duration::from_secs(60))
        .expect("a plate event within a minute");
    let event: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(event["kind"], "plate", "{event}");
    assert_eq!(event["licence_plate"], PLATE, "{event}");
    assert!(event["ts"].as_u64().unwrap() > 1_700_000_000_000, "{event}");
    assert!(
        event.get("jpeg").is_none() && payload.len() < 300,
        "{payload}"
    );
    api.wait_for_records("plates", 1, Duration::from_secs(30))
        .await;
    // Read once: the looping clip shows the same vehicle, which stays one
    // track and is not read again.
    assert!(watch.next(Duration::from_secs(5)).is_none());
    assert_eq!(api.records("plates").await, 1);
}
