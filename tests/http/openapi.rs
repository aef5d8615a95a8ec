//! The OpenAPI document (`openapi.json`): served as checked in, structurally sound, and in
//! step with the router in both directions: every route registered in `src/` is documented,
//! and every documented method is routed while undocumented methods answer 405.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::TestApp;

const DOC: &str = include_str!("../../openapi.json");
const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];
/// Routes of other listeners, not of this API.
const NOT_THIS_API: [&str; 1] = ["/metrics"];
/// Documented ahead of a branch that adds them (skipped by the probe until they are routed).
fn doc() -> Value {
    serde_json::from_str(DOC).unwrap()
}

/// Documented paths with their methods, and whether they exist only in multi-instance mode.
fn documented() -> BTreeMap<String, (BTreeSet<String>, bool)> {
    let d = doc();
    let mut out = BTreeMap::new();
    for (path, item) in d["paths"].as_object().unwrap() {
        let mut methods = BTreeSet::new();
        let mut multi_only = false;
        for m in METHODS {
            if let Some(op) = item.get(m) {
                methods.insert(m.to_owned());
                multi_only |= op.get("x-gotrue-mode").and_then(Value::as_str) == Some("multi-instance");
            }
        }
        out.insert(path.clone(), (methods, multi_only));
    }
    out
}

/// `.route("<path>"` in the non-test part of every source file.
fn registered_paths() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let mut out = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (i, _) in code.match_indices(".route(") {
            let rest = code[i + ".route(".len()..].trim_start();
            let Some(rest) = rest.strip_prefix('"') else { continue };
            let path = &rest[..rest.find('"').unwrap()];
            // Trailing-slash twins are aliases (README of the spec, compatibility note 7).
            let path = if path.len() > 1 { path.trim_end_matches('/') } else { path };
            out.insert(path.to_owned());
        }
    }
    out
}

#[tokio::test]
async fn served_document_is_the_checked_in_file() {
    let app = TestApp::spawn().await;
    let r = app.send(app.get("/openapi.json")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text, DOC);
}

#[test]
fn document_is_openapi_3_1_with_resolvable_references() {
    let d = doc();
    assert_eq!(d["openapi"], "3.1.0");
    assert!(d["info"]["title"].is_string() && d["info"]["version"].is_string());
    for scheme in ["bearerJwt", "operatorToken", "nfSign"] {
        assert!(d["components"]["securitySchemes"][scheme].is_object(), "{scheme}");
    }
    // Every $ref points at something.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r.clone());
                }
                o.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&d, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let ptr = r.strip_prefix('#').unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(d.pointer(ptr).is_some(), "dangling $ref {r}");
    }
    // Unique operation ids, and every operation says what it answers.
    let mut ids = BTreeSet::new();
    for (path, item) in d["paths"].as_object().unwrap() {
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{m} {path}: no operationId"));
            assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
            assert!(!op["responses"].as_object().unwrap().is_empty(), "{m} {path}: no responses");
        }
    }
}

#[test]
fn every_registered_route_is_documented() {
    let documented = documented();
    let registered = registered_paths();
    assert!(registered.contains("/token") && registered.contains("/admin/users/{user_id}"), "scan found {registered:?}");
    for path in &registered {
        if NOT_THIS_API.contains(&path.as_str()) {
            continue;
        }
        assert!(documented.contains_key(path), "{path} is routed but missing from openapi.json");
    }
}

#[tokio::test]
async fn documented_methods_are_routed_and_others_are_not() {
    let app = TestApp::spawn_with(&[("GOTRUE_API_EXPORT_SECRET", "export-secret")]).await;
    let nil = uuid::Uuid::nil().to_string();
    for (path, (methods, multi_only)) in documented() {
        if multi_only {
            continue;
        }
        let url = format!("{}{}", app.url, path.replace("{user_id}", &nil).replace("{instance_id}", &nil));
        for m in METHODS {
            let method = reqwest::Method::from_bytes(m.to_ascii_uppercase().as_bytes()).unwrap();
            let r = app.send(app.client.request(method, &url)).await;
            if methods.contains(m) {
                assert_ne!(r.status, 405, "{m} {path} is documented but not routed");
                assert_ne!(r.text, "404 page not found\n", "{m} {path} is documented but not routed");
            } else {
                assert_eq!(r.status, 405, "{m} {path} answers {} but is not documented", r.status);
            }
        }
    }
}
