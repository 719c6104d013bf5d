//! Plates end to end, with the real daemon and the real data API on
//! 127.0.0.1: a car's plate read from a video reaches the data API through
//! the outbox and POST /licence-plate finds the car's picture by its text;
//! plates stored in the data API come back as `{time, car_image, …}` lines,
//! exact match first, an OCR-confused query still finds them, and bad
//! questions get the seed's errors. Abroad, the text-line detector and the
//! generic grammar read a real foreign plate the same way.

use std::time::Duration;

use reqwest::Client;
use serde_json::{Value, json};
use wayside_e2e::{Daemon, DataApi, media, plate_clip, post_video, still_clip};

/// Stores a plate read in the data API as the outbox would.
async fn store_plate(api: &DataApi, id: &str, plate: &str, time_ms: u64, jpeg: &[u8]) -> String {
    let up = api.put_media(jpeg, "car.jpg", None).await;
    let url = up["url"].as_str().expect("media url").to_string();
    let record = json!({"id": id, "licence_plate": plate, "pic": url, "time_ms": time_ms,
                        "source": "cam-north", "captured_at": "2026-11-29T08:00:00Z",
                        "confidence": 0.93});
    api.ingest("plates", &record, None).await;
    url
}

async fn ask(d: &Daemon, body: &str) -> (u16, Vec<Value>) {
    let res = Client::new()
        .post(d.url("/licence-plate"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l:?}")))
        .collect();
    (status, lines)
}

#[tokio::test]
async fn plates_are_found_through_the_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let api = DataApi::start(&tmp.path().join("data"), "127.0.0.1:0", &[]);
    let d = Daemon::start(&format!("[data_api]\nurl = \"{}\"\n", api.base)).await;
    let car = std::fs::read(media("bus.jpg")).unwrap();
    let pic = store_plate(&api, "p1", "LTZ 1298", 61_500, &car).await;
    store_plate(&api, "p2", "LTZ 1290", 70_000, &car).await;
    store_plate(&api, "p3", "KX 4411", 80_000, &car).await;

    let (status, lines) = ask(&d, r#"{"licence_plate": "ltz-1298"}"#).await;
    assert_eq!(status, 200, "{lines:?}");
    assert_eq!(lines[0]["time"], 61_500, "{lines:?}");
    // The picture comes through the box, whose browser may not reach the
    // data API.
    let name = pic.rsplit('/').next().unwrap();
    assert_eq!(lines[0]["car_image"], d.url(&format!("/data-media/{name}")));
    let through = reqwest::get(lines[0]["car_image"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(through.as_ref(), car.as_slice());
    assert_eq!(lines[0]["licence_plate"], "LTZ 1298");
    assert_eq!(lines[0]["source"], "cam-north");
    assert!(lines.iter().all(|l| l["licence_plate"] != "KX 4411"));

    // O for 0 and B for 8, as OCR confuses them: still the same car first.
    let (status, lines) = ask(&d, r#"{"licence_plate": "LTZ 12B8"}"#).await;
    assert_eq!(status, 200);
    assert_eq!(lines[0]["time"], 61_500, "{lines:?}");

    for (body, want) in [
        (r#"{}"#, 400),
        (r#"{"licence_plate": "  "}"#, 400),
        (r#"{"licence_plate": "A", "k": 0}"#, 400),
        (r#"not json"#, 400),
    ] {
        let (status, lines) = ask(&d, body).await;
        assert_eq!(status, want, "{body}: {lines:?}");
        assert!(lines[0]["error"].is_string(), "{body}: {lines:?}");
    }
    let (_, lines) = ask(&d, "{}").await;
    assert_eq!(lines[0]["error"], "Licence plate is required");
}

#[tokio::test]
async fn a_plate_from_a_video_is_found_by_its_text() {
    const PLATE: &str = "苏E5B208";
    let tmp = tempfile::tempdir().unwrap();
    let clip = plate_clip(tmp.path(), PLATE);
    let api = DataApi::start(&tmp.path().join("data"), "127.0.0.1:0", &[]);
    let d = Daemon::start(&format!(
        "[plates]\nenabled = true\n[data_api]\nurl = \"{}\"\n",
        api.base
    ))
    .await;

    let v = post_video(&d, &clip, 200).await;
    eprintln!(
        "plates forwarded: {}; stage times {}",
        v["plates_forwarded"], v["stage_ms"]
    );
    assert_eq!(v["plates_forwarded"], 1, "one vehicle, one plate: {v}");
    assert!(v["stage_ms"]["plates"].as_u64().unwrap() > 0);
    api.wait_for_records("plates", 1, Duration::from_secs(30))
        .await;

    // The plate as read, as a person types it, and with B typed as 8.
    for query in [PLATE, "苏e·5b208", "苏E58208"] {
        let body = json!({ "licence_plate": query }).to_string();
        let (status, lines) = ask(&d, &body).await;
        assert_eq!(status, 200, "{query}: {lines:?}");
        assert_eq!(lines.len(), 1, "{query}: {lines:?}");
        let hit = &lines[0];
        assert_eq!(hit["licence_plate"], PLATE, "{query}: {hit}");
        assert!(hit["source"].as_str().unwrap().starts_with("upload-"));
        // The picture's time is one of the clip's frames.
        let t = hit["time"].as_u64().expect("time in ms");
        assert!(t < 3000 && t % 200 == 0, "{query}: time {t}");
        let res = reqwest::get(hit["car_image"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let car = image::load_from_memory(&res.bytes().await.unwrap()).expect("a JPEG");
        // The vehicle, not the whole frame or a sliver of it.
        assert!(
            car.width() >= 300 && car.height() >= 200,
            "{}x{}",
            car.width(),
            car.height()
        );
    }
    // A different car's plate is not this one.
    let (status, lines) = ask(&d, r#"{"licence_plate": "京A99999"}"#).await;
    assert_eq!(status, 200);
    assert!(
        lines.iter().all(|l| l["licence_plate"] != PLATE),
        "{lines:?}"
    );
}

/// A box abroad: `plates.detector_model = "plate-text-detector"` and the
/// generic grammar read the real Czech plate of a photo (fast-alpr's test
/// image, tests/fixtures/plates/real.toml) held still for 3 s, and
/// /licence-plate finds it, also with I typed for 1.
#[tokio::test]
async fn a_foreign_plate_is_read_with_the_text_line_detector() {
    const PLATE: &str = "5AU5341";
    let tmp = tempfile::tempdir().unwrap();
    let clip = still_clip(tmp.path(), "fast-alpr-test_image.png", 3);
    let api = DataApi::start(&tmp.path().join("data"), "127.0.0.1:0", &[]);
    let d = Daemon::start(&format!(
        "[plates]\nenabled = true\ndetector_model = \"plate-text-detector\"\n\
         [plates.grammar]\nchinese = false\n[plates.grammar.generic]\nenabled = true\n\
         [data_api]\nurl = \"{}\"\n",
        api.base
    ))
    .await;

    let v = post_video(&d, &clip, 200).await;
    assert_eq!(v["plates_forwarded"], 1, "one car, one plate: {v}");
    api.wait_for_records("plates", 1, Duration::from_secs(30))
        .await;
    for query in [PLATE, "5au 534i"] {
        let body = json!({ "licence_plate": query }).to_string();
        let (status, lines) = ask(&d, &body).await;
        assert_eq!(status, 200, "{query}: {lines:?}");
        assert_eq!(lines.len(), 1, "{query}: {lines:?}");
        assert_eq!(lines[0]["licence_plate"], PLATE, "{query}: {lines:?}");
    }
}
