//! The web page at `/`, driven in Debian's headless chromium through
//! chromedriver (WebDriver) against the real daemon and data API: a real
//! clip uploaded shows live frames and charts, then the processed video and
//! the downloads; a plate typed with an OCR confusion finds the vehicle; a
//! photo finds the faces the clip forwarded; bad input is shown in words.
//! Each view is screenshotted at desktop and phone width into
//! `target/tmp/ui/` for a person to look at.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use wayside_e2e::{Daemon, DataApi, free_port, media, plate_clip};

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (scripts/setup.sh installs chromium-driver)");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"],
            }),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let path = screenshots().join(format!("{name}.png"));
    std::fs::write(&path, c.screenshot().await.unwrap()).unwrap();
    eprintln!("screenshot: {}", path.display());
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// Polls `script` until it returns true; panics with `what` after `limit`.
async fn until(c: &Client, script: &str, limit: Duration, what: &str) {
    let start = Instant::now();
    loop {
        if js(c, script).await == Value::Bool(true) {
            return;
        }
        if start.elapsed() > limit {
            let page = js(c, "return document.querySelector('main').innerText;").await;
            panic!("{what}: not after {limit:?}; the page says: {page}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn choose_file(c: &Client, css: &str, path: &Path) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(&path.canonicalize().unwrap().display().to_string())
        .await
        .unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn tab(c: &Client, view: &str) {
    click(c, &format!("nav [data-view=\"{view}\"]")).await;
}

/// Nothing wider than the window: no sideways scrolling on a phone.
async fn fits(c: &Client) -> bool {
    js(
        c,
        "return document.documentElement.scrollWidth <= window.innerWidth;",
    )
    .await
        == Value::Bool(true)
}

#[tokio::test]
async fn the_page_works_in_a_real_browser() {
    const PLATE: &str = "苏E5B208";
    let tmp = tempfile::tempdir().unwrap();
    let video = plate_clip(tmp.path(), PLATE);
    let api = DataApi::start(&tmp.path().join("data"), "127.0.0.1:0", &[]);
    let d = Daemon::start(&format!(
        "[faces]\nenabled = true\n[plates]\nenabled = true\n[data_api]\nurl = \"{}\"\n",
        api.base
    ))
    .await;
    let driver = Driver::start();
    let c = driver.browser().await;
    c.goto(&d.url("/")).await.unwrap();
    assert_eq!(c.title().await.unwrap(), "Wayside");
    // No tokens on this box: no token prompt.
    assert_eq!(
        js(
            &c,
            "return getComputedStyle(document.getElementById('auth')).display;"
        )
        .await,
        "none"
    );

    // Video: frames and charts while it runs, then the video and downloads.
    choose_file(&c, "#video-file", &video).await;
    js(
        &c,
        "document.getElementById('video-interval').value = '400';",
    )
    .await;
    click(&c, "#video-run").await;
    until(
        &c,
        "return document.getElementById('video-frame').src.startsWith('data:image/jpeg') \
         && document.getElementById('video-done').hidden;",
        Duration::from_secs(60),
        "a live frame before the end",
    )
    .await;
    until(
        &c,
        "return !document.getElementById('video-done').hidden;",
        Duration::from_secs(120),
        "the processed video",
    )
    .await;
    assert!(
        text(&c, "#video-status")
            .await
            .starts_with("Done: 8 samples"),
        "{}",
        text(&c, "#video-status").await
    );
    // The browser plays the annotated H.264 MP4 from its /media URL.
    until(
        &c,
        "const v = document.getElementById('video-result'); \
         return v.readyState >= 1 && v.error === null;",
        Duration::from_secs(20),
        "the processed video's metadata",
    )
    .await;
    let duration = js(
        &c,
        "return document.getElementById('video-result').duration;",
    )
    .await
    .as_f64()
    .unwrap();
    assert!((2.0..=3.5).contains(&duration), "duration {duration}");
    // The chart has been drawn on.
    let inked = js(
        &c,
        "const c = document.getElementById('video-chart'); \
         const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
         let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;",
    )
    .await;
    assert!(inked.as_u64().unwrap() > 500, "chart pixels: {inked}");
    let csv = c
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             fetch(document.getElementById('video-csv').href).then(r => r.text()).then(done, e => done(String(e)));",
            vec![],
        )
        .await
        .unwrap();
    let csv = csv.as_str().unwrap();
    assert!(csv.starts_with("index,timestamp_ms,pedestrian_count,vehicle_count,"));
    assert_eq!(csv.lines().count(), 1 + 8, "{csv}");
    assert!(csv.lines().nth(1).unwrap().starts_with("0,0,"), "{csv}");
    let summary = c
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             fetch(document.getElementById('video-json').href).then(r => r.json()).then(done, e => done(String(e)));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(summary["plates_forwarded"], 1, "{summary}");
    let faces = summary["faces_forwarded"].as_u64().unwrap();
    screenshot(&c, "video").await;

    // Plates: typed with B as 8, the vehicle comes back with its picture.
    api.wait_for_records("plates", 1, Duration::from_secs(30))
        .await;
    tab(&c, "plates").await;
    c.find(Locator::Css("#plate-text"))
        .await
        .unwrap()
        .send_keys("苏E58208")
        .await
        .unwrap();
    click(&c, "#plate-run").await;
    until(
        &c,
        "const i = document.querySelector('#plate-results figure img'); \
         return !!i && i.complete && i.naturalWidth > 0;",
        Duration::from_secs(20),
        "the vehicle's picture",
    )
    .await;
    let caption = text(&c, "#plate-results figcaption").await;
    assert!(caption.contains(PLATE), "{caption}");
    screenshot(&c, "plates").await;
    // An empty plate: the API's words on the page.
    js(&c, "document.getElementById('plate-text').value = '';").await;
    click(&c, "#plate-run").await;
    until(
        &c,
        "return !document.getElementById('plate-error').hidden;",
        Duration::from_secs(10),
        "the plate error",
    )
    .await;
    let error = text(&c, "#plate-error").await;
    assert!(error.contains("Licence plate is required"), "{error}");

    // Faces: the photo the clip was made from finds the faces it forwarded.
    assert!(faces >= 1, "the clip forwarded no face: {summary}");
    api.wait_for_records("faces", faces, Duration::from_secs(30))
        .await;
    // The query: the picture the data API holds of the face the clip
    // forwarded (whoever it is; the photo's largest face wears sunglasses
    // and is not kept), as a person would drop a crop they were sent.
    let stored = reqwest::Client::new()
        .post(d.url("/face-detect"))
        .multipart(
            reqwest::multipart::Form::new().part(
                "image",
                reqwest::multipart::Part::bytes(std::fs::read(media("bus.jpg")).unwrap())
                    .file_name("bus.jpg"),
            ),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let stored: Value =
        serde_json::from_str(stored.lines().next().expect("a stored face")).unwrap();
    let query = tmp.path().join("face.jpg");
    let bytes = reqwest::get(stored["similar_face"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    std::fs::write(&query, bytes).unwrap();
    tab(&c, "faces").await;
    choose_file(&c, "#face-file", &query).await;
    click(&c, "#face-run").await;
    until(
        &c,
        "const i = document.querySelector('#face-results figure img'); \
         return !!i && i.complete && i.naturalWidth > 0;",
        Duration::from_secs(30),
        "a matching face",
    )
    .await;
    let caption = text(&c, "#face-results figcaption").await;
    eprintln!("faces forwarded {faces}; best match: {caption}");
    let score: f64 = caption
        .split("score ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in {caption:?}"));
    assert!(score > 0.8, "the face's own picture scores {score}");
    screenshot(&c, "faces").await;
    // Not a photo: said in words.
    let not_image = tmp.path().join("notes.jpg");
    std::fs::write(&not_image, "not a photo").unwrap();
    choose_file(&c, "#face-file", &not_image).await;
    click(&c, "#face-run").await;
    until(
        &c,
        "return !document.getElementById('face-error').hidden;",
        Duration::from_secs(10),
        "the face error",
    )
    .await;
    let error = text(&c, "#face-error").await;
    assert!(error.contains("HTTP 415"), "{error}");

    // Not a video: said in words.
    tab(&c, "video").await;
    let not_video = tmp.path().join("notes.mp4");
    std::fs::write(&not_video, "not a video").unwrap();
    choose_file(&c, "#video-file", &not_video).await;
    click(&c, "#video-run").await;
    until(
        &c,
        "return !document.getElementById('video-error').hidden;",
        Duration::from_secs(10),
        "the video error",
    )
    .await;
    let error = text(&c, "#video-error").await;
    assert!(error.contains("HTTP 415"), "{error}");

    // Phone width: every view fits without sideways scrolling.
    c.set_window_size(390, 844).await.unwrap();
    for view in ["video", "faces", "plates"] {
        tab(&c, view).await;
        assert!(fits(&c).await, "{view} is wider than a phone");
        screenshot(&c, &format!("phone-{view}")).await;
    }
    c.close().await.unwrap();
}

/// Live cameras: a tile each, the working one with its annotated frame and
/// counts, the dead one marked down with the reason.
#[tokio::test]
async fn the_cameras_tab_shows_each_camera() {
    let dead_port = free_port();
    let d = Daemon::start(&format!(
        "[[camera]]\nname = \"road\"\nsource = \"file:{}\"\nwindow_ms = 1000\npreview_ms = 500\n\
         [[camera]]\nname = \"gone\"\nsource = \"rtsp://127.0.0.1:{dead_port}/x\"\nreconnect_min_ms = 200\n",
        media("otvision-cars-truck.mp4").display()
    ))
    .await;
    let driver = Driver::start();
    let c = driver.browser().await;
    c.goto(&d.url("/")).await.unwrap();
    tab(&c, "cameras").await;
    until(
        &c,
        "const i = document.querySelector('.tile[data-camera=\"road\"] img'); \
         return !!i && i.complete && i.naturalWidth === 800;",
        Duration::from_secs(60),
        "the road camera's frame",
    )
    .await;
    until(
        &c,
        "const t = document.querySelector('.tile[data-camera=\"road\"] figcaption'); \
         return !!t && t.innerText.includes('window');",
        Duration::from_secs(30),
        "the road camera's last window",
    )
    .await;
    let road = text(&c, ".tile[data-camera=\"road\"] figcaption").await;
    assert!(road.contains("fps") && road.contains("now:"), "{road}");
    let first = js(
        &c,
        "return document.querySelector('.tile[data-camera=\"road\"] img').src;",
    )
    .await;
    until(
        &c,
        &format!(
            "return document.querySelector('.tile[data-camera=\"road\"] img').src !== {first};"
        ),
        Duration::from_secs(20),
        "a newer frame",
    )
    .await;
    until(
        &c,
        "const t = document.querySelector('.tile[data-camera=\"gone\"]'); \
         return !!t && t.classList.contains('down');",
        Duration::from_secs(20),
        "the dead camera marked down",
    )
    .await;
    // No frame yet: no empty picture either.
    assert_eq!(
        js(
            &c,
            "return document.querySelector('.tile[data-camera=\"gone\"] img').offsetParent;"
        )
        .await,
        Value::Null
    );
    let gone = text(&c, ".tile[data-camera=\"gone\"] figcaption").await;
    assert!(
        gone.contains("DOWN") && gone.contains("cannot open"),
        "{gone}"
    );
    assert_eq!(text(&c, "#cameras-status").await, "1 of 2 cameras up.");
    screenshot(&c, "cameras").await;
    c.set_window_size(390, 844).await.unwrap();
    assert!(fits(&c).await, "the cameras are wider than a phone");
    screenshot(&c, "phone-cameras").await;
    c.close().await.unwrap();
}

/// A box with tokens: the page loads, a search is refused with the page
/// asking for the token, and with it the same search goes through (the
/// token travels as a cookie, which images and videos carry too).
#[tokio::test]
async fn the_page_asks_for_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let api = DataApi::start(&tmp.path().join("data"), "127.0.0.1:0", &[]);
    let d = Daemon::start(&format!(
        "auth_tokens = [\"roadside-secret-1\"]\n[data_api]\nurl = \"{}\"\n",
        api.base
    ))
    .await;
    let driver = Driver::start();
    let c = driver.browser().await;
    c.goto(&d.url("/")).await.unwrap();
    tab(&c, "plates").await;
    c.find(Locator::Css("#plate-text"))
        .await
        .unwrap()
        .send_keys("京A12345")
        .await
        .unwrap();
    click(&c, "#plate-run").await;
    until(
        &c,
        "return !document.getElementById('auth').hidden \
         && !document.getElementById('plate-error').hidden;",
        Duration::from_secs(10),
        "the token prompt",
    )
    .await;
    let error = text(&c, "#plate-error").await;
    assert!(error.contains("access token"), "{error}");
    screenshot(&c, "token").await;
    c.find(Locator::Css("#auth-token"))
        .await
        .unwrap()
        .send_keys("roadside-secret-1")
        .await
        .unwrap();
    click(&c, "#auth button").await;
    click(&c, "#plate-run").await;
    until(
        &c,
        "return document.getElementById('plate-status').textContent === 'Nothing found.' \
         && document.getElementById('plate-error').hidden;",
        Duration::from_secs(10),
        "the search with the token",
    )
    .await;
    c.close().await.unwrap();
}
