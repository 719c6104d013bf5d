//! One behavioural suite, run against every available backend (embedded
//! always; Elasticsearch when WAYSIDE_ES_URL is set), asserting they answer
//! the same way.

mod common;

use common::{face, ids, plate, servers, vector};
use serde_json::{Value, json};

const T0: &str = "2026-11-24T08:00:00Z";
const T1: &str = "2026-11-24T09:00:00Z";
const T2: &str = "2026-11-24T10:00:00Z";

async fn seed_faces(s: &common::Server) {
    let batch: Vec<Value> = vec![
        face("f0", vector(0, 0.0), 754_000, "cam-a", T0),
        face("f1", vector(0, 0.05), 3_723_000, "cam-b", T1),
        face("f2", vector(1, 0.0), 5_000, "cam-a", T2),
        face("f3", vector(2, 0.0), 6_000, "cam-b", T2),
    ];
    let (st, body) = s.post("/faces", Value::Array(batch)).await;
    assert_eq!(st, 200, "{}: {body}", s.name);
    assert_eq!(body["created"], 4, "{}: {body}", s.name);
}

async fn seed_plates(s: &common::Server) {
    let batch = vec![
        plate("p0", "ABC123", "cam-a", T0),
        plate("p1", "A8C-123", "cam-b", T1),
        plate("p2", "XYZ999", "cam-a", T1),
        plate("p3", "京A·12345", "cam-b", T2),
        plate("p4", "ABC124", "cam-a", T2),
    ];
    let (st, body) = s.post("/plates", Value::Array(batch)).await;
    assert_eq!(st, 200, "{}: {body}", s.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_error_messages() {
    for s in servers().await {
        for body in [
            json!({}),
            json!({"face_vector": null}),
            json!({"face_vector": []}),
        ] {
            let (st, b) = s.post("/search-face", body).await;
            assert_eq!(
                (st, b),
                (400, json!({"error": "Face vector is required"})),
                "{}",
                s.name
            );
        }
        for body in [
            json!({}),
            json!({"licence_plate": ""}),
            json!({"licence_plate": "   "}),
        ] {
            let (st, b) = s.post("/search-licence-plate", body).await;
            assert_eq!(
                (st, b),
                (400, json!({"error": "Licence plate is required"})),
                "{}",
                s.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn face_search_ranks_best_first_with_seed_shape() {
    for s in servers().await {
        seed_faces(&s).await;
        let (st, body) = s
            .post("/search-face", json!({"face_vector": vector(0, 0.0)}))
            .await;
        assert_eq!(st, 200, "{}: {body}", s.name);
        let results = body["results"].as_array().expect("results");
        assert_eq!(ids(&body)[..2], ["f0", "f1"], "{}: {body}", s.name);
        let first = &results[0];
        assert_eq!(first["time"], "12:34", "{}", s.name);
        assert_eq!(first["time_ms"], 754_000);
        assert_eq!(first["source"], "cam-a");
        assert_eq!(first["captured_at"], T0);
        assert!(
            first["pic"]
                .as_str()
                .expect("pic")
                .ends_with(&format!("/media/{}.jpg", "a".repeat(64)))
        );
        assert!((first["score"].as_f64().expect("score") - 1.0).abs() < 1e-3);
        assert_eq!(results[1]["time"], "1:02:03");
        let scores: Vec<f64> = results.iter().filter_map(|r| r["score"].as_f64()).collect();
        assert!(
            scores.windows(2).all(|w| w[0] >= w[1]),
            "{}: not best first",
            s.name
        );

        // Options: k, min_score, source, from/to.
        let (_, b) = s
            .post(
                "/search-face",
                json!({"face_vector": vector(0, 0.0), "k": 1}),
            )
            .await;
        assert_eq!(ids(&b), ["f0"], "{}", s.name);
        let (_, b) = s
            .post(
                "/search-face",
                json!({"face_vector": vector(0, 0.0), "min_score": 0.5}),
            )
            .await;
        assert_eq!(ids(&b), ["f0", "f1"], "{}", s.name);
        let (_, b) = s
            .post(
                "/search-face",
                json!({"face_vector": vector(0, 0.0), "source": "cam-b"}),
            )
            .await;
        assert_eq!(ids(&b)[0], "f1", "{}", s.name);
        assert!(
            b["results"]
                .as_array()
                .expect("r")
                .iter()
                .all(|r| r["source"] == "cam-b")
        );
        let (_, b) = s
            .post(
                "/search-face",
                json!({"face_vector": vector(0, 0.0), "from": T1, "to": T1}),
            )
            .await;
        assert_eq!(ids(&b), ["f1"], "{}", s.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_is_idempotent_by_id() {
    for s in servers().await {
        let f = face("dup", vector(7, 0.0), 1_000, "cam-a", T0);
        let (st, b) = s.post("/faces", f.clone()).await;
        assert_eq!(
            (st, b),
            (201, json!({"id": "dup", "created": true})),
            "{}",
            s.name
        );
        let (st, b) = s.post("/faces", f).await;
        assert_eq!(
            (st, b),
            (200, json!({"id": "dup", "created": false})),
            "{}",
            s.name
        );
        let p = plate("dup-p", "ABC123", "cam-a", T0);
        assert_eq!(s.post("/plates", p.clone()).await.0, 201);
        assert_eq!(s.post("/plates", p).await.0, 200);
        let (_, b) = s
            .post("/search-face", json!({"face_vector": vector(7, 0.0)}))
            .await;
        assert_eq!(ids(&b), ["dup"], "{}", s.name);
        let (_, b) = s
            .post("/search-licence-plate", json!({"licence_plate": "ABC123"}))
            .await;
        assert_eq!(ids(&b), ["dup-p"], "{}", s.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plate_search_tolerates_ocr_confusions_exact_first() {
    for s in servers().await {
        seed_plates(&s).await;
        let (st, b) = s
            .post("/search-licence-plate", json!({"licence_plate": "abc 123"}))
            .await;
        assert_eq!(st, 200, "{}: {b}", s.name);
        assert_eq!(ids(&b), ["p0", "p1", "p4"], "{}: {b}", s.name);
        let first = &b["results"][0];
        assert_eq!(first["time"], "01:01");
        assert_eq!(first["licence_plate"], "ABC123");
        assert_eq!(first["score"], 1.0);
        let (_, b) = s
            .post("/search-licence-plate", json!({"licence_plate": "a8c 123"}))
            .await;
        assert_eq!(
            ids(&b)[..2],
            ["p1", "p0"],
            "{}: as read ranks first: {b}",
            s.name
        );
        let (_, b) = s
            .post("/search-licence-plate", json!({"licence_plate": "A8C-I23"}))
            .await;
        assert_eq!(
            ids(&b)[..2],
            ["p1", "p0"],
            "{}: confusion ties, newest first: {b}",
            s.name
        );
        let (_, b) = s
            .post(
                "/search-licence-plate",
                json!({"licence_plate": "京A 12345"}),
            )
            .await;
        assert_eq!(ids(&b), ["p3"], "{}: {b}", s.name);
        let (_, b) = s
            .post("/search-licence-plate", json!({"licence_plate": "QQQ000"}))
            .await;
        assert_eq!(ids(&b), Vec::<String>::new(), "{}: {b}", s.name);
        let (_, b) = s
            .post(
                "/search-licence-plate",
                json!({"licence_plate": "ABC123", "source": "cam-b"}),
            )
            .await;
        assert_eq!(ids(&b), ["p1"], "{}: {b}", s.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_agree() {
    let all = servers().await;
    let mut answers: Vec<Vec<Vec<String>>> = Vec::new();
    for s in &all {
        seed_faces(s).await;
        seed_plates(s).await;
        let mut mine = Vec::new();
        for axis in 0..3 {
            let (_, b) = s
                .post(
                    "/search-face",
                    json!({"face_vector": vector(axis, 0.01), "k": 3}),
                )
                .await;
            mine.push(ids(&b));
        }
        for q in ["ABC123", "A8C123", "XYZ 999", "ABC12", "京A12345"] {
            let (_, b) = s
                .post("/search-licence-plate", json!({"licence_plate": q}))
                .await;
            mine.push(ids(&b));
        }
        answers.push(mine);
    }
    for (s, a) in all.iter().zip(&answers).skip(1) {
        assert_eq!(a, &answers[0], "{} disagrees with {}", s.name, all[0].name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_with_json() {
    for s in servers().await {
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"face_vector": [0.1, 0.2]}),
                "Face vector must have 512 numbers, got 2",
            ),
            (
                json!({"face_vector": vec![1e39; 512]}),
                "Face vector must contain only finite numbers (index 0)",
            ),
            (
                json!({"face_vector": vec![0.0; 512]}),
                "Face vector must not be all zeros",
            ),
            (json!({"face_vector": "abc"}), ""),
            (
                json!({"face_vector": vector(0, 0.0), "k": 0}),
                "k must be at least 1",
            ),
            (
                json!({"face_vector": vector(0, 0.0), "from": "yesterday"}),
                "",
            ),
        ];
        for (body, msg) in cases {
            let (st, b) = s.post("/search-face", body).await;
            assert_eq!(st, 400, "{}: {b}", s.name);
            let err = b["error"].as_str().expect("error string");
            assert!(err.contains(msg), "{}: {err}", s.name);
        }
        // NaN is not JSON: a parse error, 400.
        let nan = format!("{{\"face_vector\": [NaN{}]}}", ", 0.0".repeat(511));
        let (st, b) = s
            .raw("/search-face", "application/json", nan.into_bytes())
            .await;
        assert_eq!(st, 400, "{}: {b}", s.name);
        let (st, _) = s
            .raw("/search-face", "application/json", b"{not json".to_vec())
            .await;
        assert_eq!(st, 400);
        let (st, b) = s.raw("/search-face", "text/plain", b"{}".to_vec()).await;
        assert_eq!(
            (st, b),
            (
                415,
                json!({"error": "Content-Type must be application/json"})
            )
        );
        let big = vec![b' '; 128 * 1024];
        let (st, b) = s.raw("/search-face", "application/json", big).await;
        assert_eq!(
            (st, b),
            (413, json!({"error": "request body too large"})),
            "{}",
            s.name
        );
        // Ingest field checks.
        let mut f = face("x", vector(0, 0.0), 1, "s", T0);
        f["pic"] = json!("");
        assert_eq!(
            s.post("/faces", f).await,
            (400, json!({"error": "pic is required"}))
        );
        let f = json!({"face_vector": vector(0, 0.0), "pic": "p", "time_ms": 1});
        assert_eq!(
            s.post("/faces", f).await,
            (400, json!({"error": "id is required"}))
        );
        let p = json!({"id": "p", "pic": "p", "time_ms": 1});
        assert_eq!(
            s.post("/plates", p).await,
            (400, json!({"error": "Licence plate is required"}))
        );
        // Plate text is bounded: matching costs its length per stored read.
        let long = "京A".repeat(1000);
        let p = json!({"id": "p", "pic": "p", "time_ms": 1, "licence_plate": long});
        let too_long = json!({"error": "Licence plate must be at most 32 characters"});
        assert_eq!(s.post("/plates", p).await, (400, too_long.clone()));
        assert_eq!(
            s.post("/search-licence-plate", json!({"licence_plate": long}))
                .await,
            (400, too_long)
        );
        let batch = json!([face("ok", vector(0, 0.0), 1, "s", T0), {"id": "bad"}]);
        let (st, b) = s.post("/faces", batch).await;
        assert_eq!(
            (st, b),
            (400, json!({"error": "record 1: Face vector is required"}))
        );
        let (st, b) = s.post("/nope", json!({})).await;
        assert_eq!(st, 404, "{b}");
    }
}
