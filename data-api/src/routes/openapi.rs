//! `GET /openapi.json`: a hand-written OpenAPI 3.1 document of the data API
//! (kept beside the routes so a change to one is seen next to the other).

use axum::Json;
use serde_json::{Value, json};

fn error_response(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn search_responses() -> Value {
    json!({
        "200": {"description": "Matches, best first", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Results"}}}},
        "400": error_response("Missing or invalid field"),
        "401": error_response("Missing or invalid bearer token"),
        "413": error_response("Body too large"),
        "415": error_response("Not JSON"),
        "500": error_response("Store failure"),
        "503": error_response("Store unavailable (Retry-After)"),
        "504": error_response("Store timed out")
    })
}

fn ingest_responses() -> Value {
    json!({
        "201": {"description": "Stored (single record)"},
        "200": {"description": "Already stored (retry), or batch result"},
        "400": error_response("Missing or invalid field"),
        "413": error_response("Body or batch too large"),
        "415": error_response("Not JSON"),
        "503": error_response("Store unavailable"),
        "504": error_response("Store timed out"),
        "507": error_response("No space left under the store (retry later)")
    })
}

pub async fn document() -> Json<Value> {
    let options = json!({
        "k": {"type": "integer", "minimum": 1, "default": 20},
        "min_score": {"type": "number"},
        "source": {"type": "string"},
        "from": {"type": "string", "format": "date-time"},
        "to": {"type": "string", "format": "date-time"}
    });
    let mut face_props = options.clone();
    face_props["face_vector"] =
        json!({"type": "array", "items": {"type": "number"}, "minItems": 512, "maxItems": 512});
    let mut plate_props = options;
    plate_props["licence_plate"] = json!({"type": "string"});
    let meta = json!({
        "id": {"type": "string", "maxLength": 256},
        "pic": {"type": "string", "description": "URL or <sha256>.<ext> media name"},
        "time_ms": {"type": "integer", "minimum": 0},
        "source": {"type": "string"},
        "captured_at": {"type": "string", "format": "date-time"}
    });
    let mut face_in = meta.clone();
    face_in["face_vector"] =
        json!({"type": "array", "items": {"type": "number"}, "minItems": 512, "maxItems": 512});
    let mut plate_in = meta;
    plate_in["licence_plate"] = json!({"type": "string"});
    plate_in["confidence"] = json!({"type": "number", "minimum": 0, "maximum": 1});

    Json(json!({
        "openapi": "3.1.0",
        "info": {"title": "wayside-data", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Wayside central data API: face and licence-plate search."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "Result": {"type": "object", "required": ["pic", "time", "time_ms", "score"], "properties": {
                    "pic": {"type": "string"}, "time": {"type": "string", "description": "mm:ss or h:mm:ss"},
                    "time_ms": {"type": "integer"}, "score": {"type": "number"}, "source": {"type": "string"},
                    "captured_at": {"type": "string", "format": "date-time"}, "id": {"type": "string"},
                    "licence_plate": {"type": "string"}, "confidence": {"type": "number"}}},
                "Results": {"type": "object", "required": ["results"], "properties": {"results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}}}},
                "FaceIn": {"type": "object", "required": ["id", "face_vector", "pic", "time_ms"], "properties": face_in},
                "PlateIn": {"type": "object", "required": ["id", "licence_plate", "pic", "time_ms"], "properties": plate_in}
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/search-face": {"post": {"summary": "Faces by cosine similarity", "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": face_props}}}}, "responses": search_responses()}},
            "/search-licence-plate": {"post": {"summary": "Plate reads, OCR-confusion tolerant, exact first", "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": plate_props}}}}, "responses": search_responses()}},
            "/faces": {"post": {"summary": "Ingest a face (object) or a batch (array)", "requestBody": {"required": true, "content": {"application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/FaceIn"}, {"type": "array", "items": {"$ref": "#/components/schemas/FaceIn"}}]}}}}, "responses": ingest_responses()}},
            "/plates": {"post": {"summary": "Ingest a plate read (object) or a batch (array)", "requestBody": {"required": true, "content": {"application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/PlateIn"}, {"type": "array", "items": {"$ref": "#/components/schemas/PlateIn"}}]}}}}, "responses": ingest_responses()}},
            "/media": {"post": {"summary": "Upload a blob (multipart field `file`); content-addressed, idempotent", "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}}}}, "responses": {"200": {"description": "{url, name, size}"}, "400": error_response("No file field"), "413": error_response("Too large"), "415": error_response("Not multipart"), "507": error_response("No space left for media (retry later)")}}},
            "/media/{name}": {"get": {"summary": "A stored blob; Range supported", "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[0-9a-f]{64}\\.[a-z0-9]{1,5}$"}}], "responses": {"200": {"description": "The bytes"}, "206": {"description": "A range"}, "400": error_response("Not a content-addressed name"), "404": error_response("Unknown")}}},
            "/healthz": {"get": {"summary": "Liveness and store reachability (no auth)", "security": [], "responses": {"200": {"description": "ok"}, "503": error_response("Store unavailable")}}},
            "/metrics": {"get": {"summary": "Prometheus text", "responses": {"200": {"description": "metrics"}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}}
        }
    }))
}
