//! The committed CRD is the one the Rust types generate.

use std::process::Command;

#[test]
fn committed_crd_matches_the_generated_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_terrakio-operator"))
        .arg("crd")
        .output()
        .expect("terrakio-operator crd runs");
    assert!(
        out.status.success(),
        "crd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).expect("UTF-8");
    // deploy/ carries a copy because kustomize loads nothing from outside its folder.
    for file in ["crds/terrakiocredential.yaml", "deploy/crd.yaml"] {
        let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
        let committed = std::fs::read_to_string(&path).expect("committed CRD exists");
        assert!(
            committed == generated,
            "{file} is stale; regenerate it with `cargo run -- crd > {file}`"
        );
    }
}

#[test]
fn every_spec_field_has_a_description() {
    let crd = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/terrakiocredential.yaml"
    ))
    .unwrap();
    let doc: serde_json::Value = serde_yaml_ng::from_str(&crd).unwrap();
    let schema = &doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut missing = Vec::new();
    walk(&schema["properties"]["spec"], "spec", &mut missing);
    walk(&schema["properties"]["status"], "status", &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
}

fn walk(node: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
    if node.get("description").is_none() {
        missing.push(path.to_string());
    }
    if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
        // Conditions follow the shared Kubernetes type, documented upstream.
        if path.ends_with("conditions.items") {
            return;
        }
        for (name, child) in props {
            walk(child, &format!("{path}.{name}"), missing);
        }
    }
    if let Some(items) = node.get("items") {
        walk(items, &format!("{path}.items"), missing);
    }
}
