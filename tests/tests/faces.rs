//! Faces end to end, with the real daemon and the real data API on
//! 127.0.0.1: a clip of known people goes through POST /video, its faces
//! reach the data API through the outbox, and POST /face-detect with another
//! photo of one of them finds that person's crops at the right times.
//!
//! The clip is made from the face_recognition package's photos (who is who
//! is in docs/FACES.md): Obama for 0–3 s on the left, Biden for 3–6 s in
//! the middle, Obama again (another photo) for 6–9 s on the right. The query
//! photo, obama3.jpg, is not in the clip.
//!
//! Each person stands in a place of their own: the tracker rightly carries
//! a lost track over to a face that appears where it was lost within its
//! 3 s buffer, so people taking turns on one spot would be one track.

use std::time::Duration;

use reqwest::Client;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use wayside_e2e::{
    Daemon, DataApi, faces_config, ffmpeg, free_port, media, people_clip, post_video,
};

const SEGMENT_MS: u64 = 3000;
/// Who is on screen in each 3 s segment.
const OBAMA: [usize; 2] = [0, 2];
const BIDEN: usize = 1;

/// POST /face-detect; the status and the parsed lines (or the error body).
async fn face_detect(d: &Daemon, photo: &[u8], min_score: Option<&str>) -> (u16, Vec<Value>) {
    let mut form = Form::new().part("image", Part::bytes(photo.to_vec()).file_name("q.jpg"));
    if let Some(m) = min_score {
        form = form.text("min_score", m.to_string());
    }
    let res = Client::new()
        .post(d.url("/face-detect"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let ctype = res.headers()["content-type"].to_str().unwrap().to_string();
    let text = res.text().await.unwrap();
    if status == 200 {
        assert_eq!(ctype, "application/x-ndjson");
    } else {
        assert!(ctype.starts_with("application/json"), "{ctype}");
    }
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l:?}")))
        .collect();
    (status, lines)
}

fn segment(line: &Value) -> usize {
    (line["time"].as_u64().expect("time in ms") / SEGMENT_MS) as usize
}

#[tokio::test]
async fn a_face_from_a_video_is_found_by_another_photo() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = people_clip(tmp.path());
    let api = DataApi::start(&tmp.path().join("data"), "127.0.0.1:0", &[]);
    let d = Daemon::start(&faces_config(&api.base)).await;

    let v = post_video(&d, &clip, 1000).await;
    let forwarded = v["faces_forwarded"].as_u64().expect("faces_forwarded");
    eprintln!(
        "faces forwarded: {forwarded}; stage times {}",
        v["stage_ms"]
    );
    assert!(
        (3..=6).contains(&forwarded),
        "one face per person per segment expected, got {forwarded}"
    );
    api.wait_for_records("faces", forwarded, Duration::from_secs(30))
        .await;

    // Another photo of Obama: his two segments match, Biden's does not.
    let query = std::fs::read(media("obama3.jpg")).unwrap();
    let (status, lines) = face_detect(&d, &query, Some("0.45")).await;
    assert_eq!(status, 200, "{lines:?}");
    eprintln!("obama3.jpg matches: {lines:?}");
    let segments: Vec<usize> = lines.iter().map(segment).collect();
    for s in OBAMA {
        assert!(segments.contains(&s), "no match in segment {s}: {lines:?}");
    }
    assert!(!segments.contains(&BIDEN), "Biden matched Obama: {lines:?}");
    for l in &lines {
        assert!(l["score"].as_f64().unwrap() >= 0.45);
        assert!(l["captured_at"].as_str().is_some_and(|s| s.contains('T')));
        assert!(l["source"].as_str().unwrap().starts_with("upload-"));
    }
    let scores: Vec<f64> = lines.iter().map(|l| l["score"].as_f64().unwrap()).collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );

    // The picture behind the best match is a JPEG the data API serves.
    let pic = lines[0]["similar_face"].as_str().unwrap();
    let res = reqwest::get(pic).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(&res.bytes().await.unwrap()[..3], b"\xFF\xD8\xFF");

    // Biden's own photo finds his segment first (not at 1.0: the clip's
    // copy is scaled and H.264-compressed), and without a threshold every
    // stored face comes back, best first.
    let (status, lines) = face_detect(&d, &std::fs::read(media("biden.jpg")).unwrap(), None).await;
    assert_eq!(status, 200);
    assert_eq!(segment(&lines[0]), BIDEN, "{lines:?}");
    assert!(lines[0]["score"].as_f64().unwrap() > 0.7, "{lines:?}");
    assert!(lines[1]["score"].as_f64().unwrap() < 0.45, "{lines:?}");
    assert_eq!(lines.len() as u64, forwarded);

    // The same video again: the same records, nothing new in the data API.
    let again = post_video(&d, &clip, 1000).await;
    assert_eq!(again["faces_forwarded"], v["faces_forwarded"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(api.records("faces").await, forwarded);
}

/// The data API is down while the video is processed, the daemon is killed
/// with faces still in its outbox, the data API comes up, the daemon
/// restarts: every face arrives, once.
#[tokio::test]
async fn faces_survive_an_outage_and_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = people_clip(tmp.path());
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let extra = format!(
        "[faces]\nenabled = true\n[data_api]\nurl = \"{url}\"\n\
         [outbox]\ndir = \"{}\"\nretry_min_ms = 50\nretry_max_ms = 500\n",
        tmp.path().join("outbox").display()
    );
    let d = Daemon::start(&extra).await;
    let v = post_video(&d, &clip, 1000).await;
    let forwarded = v["faces_forwarded"].as_u64().unwrap();
    assert!(forwarded >= 3, "{v}");
    assert_eq!(d.metric("wayside_outbox_pending").await, forwarded);
    assert_eq!(d.metric("wayside_outbox_delivered_total").await, 0);
    let dir = d.kill();

    let api = DataApi::start(&tmp.path().join("data"), &format!("127.0.0.1:{port}"), &[]);
    let d = Daemon::start_in(dir, &extra).await;
    api.wait_for_records("faces", forwarded, Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(api.records("faces").await, forwarded, "every face once");
    assert_eq!(d.metric("wayside_outbox_pending").await, 0);
}

#[tokio::test]
async fn face_detect_refuses_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let api = DataApi::start(&tmp.path().join("data"), "127.0.0.1:0", &[]);
    let d = Daemon::start(&format!(
        "max_image_pixels = 2000000\n{}",
        faces_config(&api.base)
    ))
    .await;
    let error = |lines: &[Value]| lines[0]["error"].as_str().unwrap_or_default().to_string();

    // A photo without a face: a grey frame.
    let blank = tmp.path().join("blank.png");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=gray:s=320x240",
        "-frames:v",
        "1",
        blank.to_str().unwrap(),
    ]);
    let (status, lines) = face_detect(&d, &std::fs::read(&blank).unwrap(), None).await;
    assert_eq!((status, error(&lines).as_str()), (400, "no face found"));

    let (status, lines) = face_detect(&d, b"just some text, not a photo", None).await;
    assert_eq!(status, 415, "{lines:?}");

    // A JPEG cut off inside its headers. (One cut inside the scan data
    // still decodes, grey below the cut, as browsers show it.)
    let jpeg = std::fs::read(media("obama.jpg")).unwrap();
    let (status, lines) = face_detect(&d, &jpeg[..300], None).await;
    assert_eq!(status, 422, "{lines:?}");

    // 3840×2160 is over the 2 MP limit set above: refused from the header.
    let big = tmp.path().join("big.png");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=gray:s=3840x2160",
        "-frames:v",
        "1",
        big.to_str().unwrap(),
    ]);
    let (status, lines) = face_detect(&d, &std::fs::read(&big).unwrap(), None).await;
    assert_eq!(status, 413, "{lines:?}");

    let (status, lines) = face_detect(&d, &jpeg, Some("lots")).await;
    assert_eq!(status, 400, "{lines:?}");

    let res = Client::new()
        .post(d.url("/face-detect"))
        .multipart(Form::new().text("k", "3"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // The data API gone: a clear 502, and the daemon still serves.
    drop(api);
    let (status, lines) = face_detect(&d, &jpeg, None).await;
    assert_eq!(status, 502, "{lines:?}");
    assert!(error(&lines).contains("unreachable"), "{lines:?}");
    assert!(
        reqwest::get(d.url("/healthz"))
            .await
            .unwrap()
            .status()
            .is_success()
    );
}
