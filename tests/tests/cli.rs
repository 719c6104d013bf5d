//! The `wayside` command line on real photos and real models.

use wayside_e2e::{media, wayside};

#[test]
fn models_verify_checks_and_loads_every_model() {
    let out = wayside(&["models", "verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for id in [
        "detector",
        "detector-int8",
        "face-detector",
        "face-embedder",
        "plate-detector",
        "plate-recognizer",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(&format!("ok  {id} "))),
            "{id} not verified:\n{stdout}"
        );
    }
}

#[test]
fn detect_prints_json_and_draws_the_boxes() {
    let dir = tempfile::tempdir().unwrap();
    let out_img = dir.path().join("annotated.png");
    let photo = media("bus.jpg");
    let out = wayside(&[
        "detect",
        photo.to_str().unwrap(),
        "--out",
        out_img.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(report["width"], 810);
    assert_eq!(report["height"], 1080);
    // 810x1080 scales to 312x416, with 52 columns of padding each side; the
    // manifest trims whole blocks of 32 from each, keeping the stride grid.
    assert_eq!(report["input_size"], serde_json::json!([352, 416]));
    assert!(report["pedestrians"].as_u64().unwrap() >= 3, "{report}");
    for timing in ["first_inference_ms", "inference_ms"] {
        assert!(report[timing].as_f64().unwrap() > 0.0, "{report}");
    }
    let dets = report["detections"].as_array().unwrap();
    assert!(
        dets.iter()
            .any(|d| d["class"] == "bus" && d["kind"] == "vehicle"),
        "{report}"
    );
    let written = std::fs::metadata(&out_img).expect("annotated image written");
    assert!(written.len() > 10_000);
}

#[test]
fn detect_on_a_file_that_is_not_an_image_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("photo.jpg");
    std::fs::write(&fake, "this is text, not a JPEG").unwrap();
    let out = wayside(&["detect", fake.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reading image") && stderr.contains("photo.jpg"),
        "{stderr}"
    );
}

#[test]
fn a_bad_config_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wayside.toml");
    std::fs::write(&config, "[detector]\nnms_iou = 2.0\n").unwrap();
    let out = wayside(&["--config", config.to_str().unwrap(), "models", "verify"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("detector.nms_iou"), "{stderr}");
}

/// The configs shipped for deployment (the Yocto layer's defaults) are
/// accepted, and a bad one is refused with the field named.
#[test]
fn check_config_accepts_the_shipped_config_and_names_bad_fields() {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../yocto/meta-wayside/recipes-wayside/wayside/files/wayside.toml");
    let out = wayside(&["--config", shipped.to_str().unwrap(), "config", "check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let full: toml::Table = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(
        full["outbox"]["dir"].as_str(),
        Some("/var/lib/wayside/outbox")
    );
    assert_eq!(full["faces"]["enabled"].as_bool(), Some(true));

    let dir = tempfile::tempdir().unwrap();
    for (text, field) in [
        ("[faces]\npicture_margin = 7.0\n", "faces.picture_margin"),
        ("[data_api]\nurl = \"ftp://x\"\n", "data_api.url"),
        ("[outbox]\nmax_records = 0\n", "outbox.max_records"),
        ("[server]\nmax_photo_jobs = 0\n", "server.max_photo_jobs"),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = wayside(&["--config", path.to_str().unwrap(), "config", "check"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text} was accepted");
        assert!(stderr.contains(field), "{text}: {stderr}");
    }
}
