//! Bearer tokens on the daemon (`server.auth_tokens`): every endpoint but
//! `/healthz` and the web page's own files wants one, as a header or as the
//! page's cookie; the refusal is JSON with `WWW-Authenticate`.

use reqwest::{Client, StatusCode};
use serde_json::Value;
use wayside_e2e::Daemon;

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
