//! The box and the data API over HTTPS with a private CA made in the test:
//! a plate read from a video reaches the data API through the outbox and is
//! found again through the box's search, every hop over TLS. A box that
//! does not trust the CA is refused and says why.

use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};
use wayside_e2e::{Daemon, DataApi, TestCa, plate_clip, post_video};

const PLATE: &str = "苏E5B208";

#[tokio::test(flavor = "multi_thread")]
async fn the_box_speaks_https_to_a_data_api_with_a_private_ca() {
    let ca = TestCa::new();
    let (cert, key) = ca.server("data-api");
    let tmp = tempfile::tempdir().unwrap();
    let api = DataApi::start(
        &tmp.path().join("data"),
        "127.0.0.1:0",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(api.base.starts_with("https://"), "{}", api.base);
    // Plain HTTP on the HTTPS port gets no API.
    let plain = api.base.replace("https://", "http://");
    assert!(
        reqwest::get(format!("{plain}/healthz"))
            .await
            .is_ok_and(|r| !r.status().is_success())
            || reqwest::get(format!("{plain}/healthz")).await.is_err()
    );

    let d = Daemon::start(&format!(
        "[data_api]\nurl = \"{}\"\nca_file = \"{}\"\n[plates]\nenabled = true\n",
        api.base,
        ca.cert.display()
    ))
    .await;
    let summary = post_video(&d, &plate_clip(tmp.path(), PLATE), 400).await;
    assert_eq!(summary["plates_forwarded"], 1, "{summary}");

    // Forwarded over TLS (outbox), found over TLS (search), picture over TLS.
    let deadline = Instant::now() + Duration::from_secs(30);
    let line = loop {
        let text = Client::new()
            .post(d.url("/licence-plate"))
            .json(&json!({ "licence_plate": PLATE }))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if let Some(first) = text
            .lines()
            .next()
            .and_then(|l| serde_json::from_str::<Value>(l).ok())
            && first["licence_plate"] == PLATE
        {
            break first;
        }
        assert!(Instant::now() < deadline, "the plate never arrived: {text}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let picture = reqwest::get(line["car_image"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(picture.status(), 200);
    assert_eq!(picture.headers()["content-type"], "image/jpeg");

    // A box without the CA: refused, and the error says why.
    let stranger = Daemon::start(&format!("[data_api]\nurl = \"{}\"\n", api.base)).await;
    let res = Client::new()
        .post(stranger.url("/licence-plate"))
        .json(&json!({ "licence_plate": PLATE }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let e: Value = res.json().await.unwrap();
    let why = e["error"].as_str().unwrap();
    assert!(why.contains("certificate"), "{why}");
}
