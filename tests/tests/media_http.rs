//! `GET /media/{name}` serves only content-addressed names: traversal in
//! any spelling, odd names and other extensions are a JSON 404, never a
//! file from elsewhere (symlinks inside the media directory are refused
//! too: `daemon/src/media.rs`'s tests).

use reqwest::StatusCode;
use serde_json::Value;
use wayside_e2e::Daemon;

#[tokio::test]
async fn only_content_addresses_are_served() {
    let d = Daemon::start("").await;
    let hash = "a".repeat(64);
    for name in [
        "..%2F..%2F..%2Fetc%2Fpasswd".to_string(),
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd".to_string(),
        "..%5C..%5Cwayside.toml".to_string(),
        format!("{hash}.mp4%00.txt"),
        format!("{hash}.mp4%2F.."),
        format!("{}.mp4", hash.to_uppercase()),
        format!("{hash}.toml"),
        "wayside.toml".to_string(),
        "%2Fetc%2Fpasswd".to_string(),
        format!("{hash}.mp4"), // well formed, but no such file
    ] {
        let res = reqwest::get(d.url(&format!("/media/{name}")))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{name}");
        let body: Value = res.json().await.unwrap();
        assert!(body["error"].is_string(), "{name}: {body}");
    }
}
