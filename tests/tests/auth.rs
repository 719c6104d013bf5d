//! Bearer tokens on the daemon (`server.auth_tokens`): every endpoint but
//! `/healthz` and the web page's own files wants one, as a header or as the
//! page's cookie; the refusal is JSON with `WWW-Authenticate`.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use wayside_e2e::{Daemon, DataApi, media};

const TOKEN: &str = "roadside-secret-1";

#[tokio::test]
async fn only_a_configured_token_gets_in() {
    let d = Daemon::start(&format!(
        "auth_tokens = [\"another-token-0\", \"{TOKEN}\"]\n"
    ))
    .await;
    let c = Client::new();

    for open in ["/healthz", "/", "/ui/app.js"] {
        let res = c.get(d.url(open)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{open}");
    }

    let refused = |res: reqwest::Response| async move {
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        let body: Value = res.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
    };
    refused(c.get(d.url("/metrics")).send().await.unwrap()).await;
    refused(
        c.get(d.url("/metrics"))
            .bearer_auth("roadside-secret-2")
            .send()
            .await
            .unwrap(),
    )
    .await;
    refused(
        c.get(d.url("/metrics"))
            .header("cookie", "wayside_token=roadside-secret")
            .send()
            .await
            .unwrap(),
    )
    .await;
    // Refused before the upload is read: no spooling for strangers.
    refused(
        c.post(d.url("/video"))
            .multipart(reqwest::multipart::Form::new().text("interval", "1000"))
            .send()
            .await
            .unwrap(),
    )
    .await;

    let res = c
        .get(d.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = c
        .get(d.url("/metrics"))
        .header("cookie", format!("theme=dark; wayside_token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // With a token, a bad request is judged on its own merits.
    let res = c
        .post(d.url("/video"))
        .bearer_auth(TOKEN)
        .multipart(reqwest::multipart::Form::new().text("interval", "1000"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_short_token_is_refused_at_start() {
    let out = std::process::Command::new(wayside_e2e::binary("wayside"))
        .args(["config", "check"])
        .env("WAYSIDE_AUTH_TOKENS", "ok-token-123, short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.auth_tokens[1]"), "{err}");
}

/// Both services with tokens: a search's pictures are linked through the
/// box (`/data-media/…`), which fetches them with its data API token, so a
/// browser that holds only the box's token sees them; the data API itself
/// still refuses them without its token.
#[tokio::test]
async fn pictures_come_through_the_box_when_the_data_api_wants_a_token() {
    const DATA_TOKEN: &str = "central-secret-42";
    let tmp = tempfile::tempdir().unwrap();
    let api = DataApi::start(
        &tmp.path().join("data"),
        "127.0.0.1:0",
        &["--auth-token", DATA_TOKEN],
    );
    let c = Client::new();
    let picture = std::fs::read(media("bus.jpg")).unwrap();
    let stored = api.put_media(&picture, "bus.jpg", Some(DATA_TOKEN)).await;
    let record = json!({"id": "p1", "licence_plate": "苏E5B208", "pic": stored["name"],
                        "time_ms": 1200, "source": "gate"});
    api.ingest("plates", &record, Some(DATA_TOKEN)).await;

    let d = Daemon::start(&format!(
        "auth_tokens = [\"{TOKEN}\"]\n[data_api]\nurl = \"{}\"\nauth_token = \"{DATA_TOKEN}\"\n",
        api.base
    ))
    .await;
    let text = c
        .post(d.url("/licence-plate"))
        .bearer_auth(TOKEN)
        .json(&json!({"licence_plate": "苏E5B208"}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line: Value = serde_json::from_str(text.lines().next().expect("one match")).unwrap();
    let url = line["car_image"].as_str().unwrap();
    assert!(url.starts_with(&d.url("/data-media/")), "{url}");
    let cookie = format!("wayside_token={TOKEN}");
    let res = c.get(url).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(res.bytes().await.unwrap().as_ref(), picture.as_slice());
    // Without the box's token, nothing; nor from the data API without its own.
    assert_eq!(c.get(url).send().await.unwrap().status(), 401);
    let direct = format!("{}/media/{}", api.base, stored["name"].as_str().unwrap());
    assert_eq!(c.get(&direct).send().await.unwrap().status(), 401);
    // Only content-addressed names are asked for.
    for odd in ["/data-media/..%2Fmetrics", "/data-media/abc.jpg"] {
        let res = c
            .get(d.url(odd))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{odd}");
    }
    let missing = format!("/data-media/{}.jpg", "0".repeat(64));
    let res = c
        .get(d.url(&missing))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}
