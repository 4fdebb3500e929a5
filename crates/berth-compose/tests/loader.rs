//! Loader tests on real files: the compose-go full example, docker-compose 1.29's fixture
//! projects, and small projects written to temp dirs for merge, extends, include, profiles,
//! anchors and env handling.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_compose::{config, load, LoadOptions};
use serde_json::{json, Value};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn opts(dir: &Path) -> LoadOptions {
    LoadOptions {
        cwd: dir.to_path_buf(),
        os_env: BTreeMap::new(),
        ..LoadOptions::default()
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

#[test]
fn full_example_normalizes() {
    let dir = data().join("compose-go-v2");
    let mut o = opts(&dir);
    o.files = vec![dir.join("full-example.yml")];
    o.os_env.insert("HOME".into(), "/home/foo".into());
    // The example names services it does not define (db, redis), like compose-go's own
    // test, which loads it without the consistency check.
    o.no_consistency = true;
    let p = load(&o).expect("full example loads");
    assert_eq!(p.name, "full_example_project_name");
    let foo = p.service("foo").expect("foo");
    assert_eq!(
        foo["build"]["context"],
        json!(dir.join("dir").display().to_string())
    );
    assert_eq!(foo["build"]["args"], json!({"foo": "bar"}));
    assert_eq!(
        foo["command"],
        json!(["bundle", "exec", "thin", "-p", "3000"])
    );
    assert_eq!(foo["cap_add"], json!(["ALL"]));
    assert_eq!(foo["container_name"], "my-web-container");
    assert_eq!(foo["depends_on"]["db"]["condition"], "service_started");
    assert_eq!(foo["deploy"]["replicas"], 6);
    assert_eq!(foo["configs"][1]["mode"], 0o440);
    // environment: env_file values under the inline ones.
    let env = foo["environment"].as_object().expect("environment map");
    assert_eq!(env["BAZ"], "baz_from_service_def");
    assert_eq!(env["FOO"], "foo_from_env_file");
    assert_eq!(env["BAR"], "bar_from_env_file_2");
    assert_eq!(env["QUX"], "quz_from_env_file_2");
    let ports = foo["ports"].as_array().expect("ports");
    assert!(ports
        .iter()
        .any(|p| p["target"] == 8000 && p["published"] == "8000"));
    assert!(ports
        .iter()
        .any(|p| p["host_ip"] == "127.0.0.1" && p["target"] == 8001));
    let vols = foo["volumes"].as_array().expect("volumes");
    assert!(vols
        .iter()
        .any(|v| v["type"] == "volume" && v["source"] == "datavolume"));
    assert!(vols
        .iter()
        .any(|v| v["type"] == "bind" && v["source"] == "/opt/data"));
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    assert!(vols
        .iter()
        .any(|v| v["type"] == "bind" && v["source"] == json!(format!("{home}/configs"))));
    assert_eq!(foo["healthcheck"]["interval"], "10s");
    assert_eq!(foo["stop_grace_period"], "20s");
    assert_eq!(foo["ulimits"]["nproc"], 65535);
    let nets = p.section("networks");
    assert_eq!(
        nets["some-network"]["name"],
        "full_example_project_name_some-network"
    );
    assert_eq!(nets["external-network"]["name"], "external-network");
    let vols = p.section("volumes");
    assert_eq!(vols["another-volume"]["name"], "user_specified_name");
    assert_eq!(
        vols["other-volume"]["name"],
        "full_example_project_name_other-volume"
    );
    // Renders both ways without error.
    let y = config::to_yaml(&p).expect("yaml");
    assert!(
        y.starts_with("name: full_example_project_name"),
        "{}",
        &y[..80]
    );
    let j: Value = serde_json::from_str(&config::to_json(&p).expect("json")).expect("json parses");
    assert_eq!(j["services"]["foo"]["container_name"], "my-web-container");
}

/// Every docker-compose 1.29 fixture loads or fails with a message; none panics.
#[test]
fn compose_1_29_fixtures_load_or_fail_cleanly() {
    let root = data().join("docker-compose-1.29.2-fixtures");
    let mut loaded = 0;
    let mut failed = Vec::new();
    for entry in std::fs::read_dir(&root).expect("fixtures dir") {
        let dir = entry.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("fixture dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
            .collect();
        files.sort();
        for f in files {
            let mut o = opts(&dir);
            o.files = vec![f.clone()];
            let r = std::panic::catch_unwind(|| load(&o));
            match r {
                Ok(Ok(_)) => loaded += 1,
                Ok(Err(e)) => {
                    let msg = e.to_string();
                    assert!(!msg.is_empty());
                    failed.push(format!("{}: {msg}", f.display()));
                }
                Err(_) => panic!("loading {} panicked", f.display()),
            }
        }
    }
    eprintln!(
        "{loaded} loaded, {} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert!(loaded > 80, "only {loaded} fixture files loaded");
}

#[test]
fn invalid_fixture_names_the_path() {
    let dir = data().join("docker-compose-1.29.2-fixtures/invalid-composefile");
    let mut o = opts(&dir);
    o.files = vec![dir.join("invalid.yml")];
    let e = load(&o).expect_err("invalid").to_string();
    assert!(e.starts_with("validating "), "{e}");
    assert!(
        e.contains("additional properties 'notaservice' not allowed"),
        "{e}"
    );
}

#[test]
fn discovery_override_env_and_name() {
    let t = tempfile::tempdir().expect("tmp");
    let dir = t.path().join("My.App");
    write(&dir, "compose.yaml", "services:\n  web:\n    image: busybox:${TAG:-1}\n    environment: [A=1]\n    ports: ['80']\n");
    write(
        &dir,
        "compose.override.yaml",
        "services:\n  web:\n    environment:\n      B: 2\n    ports: ['81']\n",
    );
    write(&dir, ".env", "TAG=9\n");
    write(&dir, "sub/deeper/.keep", "");
    let p = load(&opts(&dir.join("sub/deeper"))).expect("loads from a subdirectory");
    assert_eq!(p.name, "myapp");
    assert_eq!(p.config_files.len(), 2);
    let web = p.service("web").expect("web");
    assert_eq!(web["image"], "busybox:9");
    assert_eq!(web["environment"], json!({"A": "1", "B": "2"}));
    assert_eq!(web["ports"].as_array().map(Vec::len), Some(2));
    assert_eq!(web["networks"], json!({"default": null}));
    assert_eq!(p.section("networks")["default"]["name"], "myapp_default");
    // The process environment wins over .env; -p wins over everything.
    let mut o = opts(&dir);
    o.os_env.insert("TAG".into(), "os".into());
    o.project_name = Some("explicit".into());
    let p = load(&o).expect("loads");
    assert_eq!(p.service("web").expect("web")["image"], "busybox:os");
    assert_eq!(p.name, "explicit");
    o.project_name = Some("Bad!".into());
    assert!(load(&o)
        .expect_err("bad name")
        .to_string()
        .contains("not a valid project name"));
}

#[test]
fn multiple_files_merge() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    write(d, "a.yml", "name: merged\nservices:\n  web:\n    image: a\n    command: [x, y]\n    volumes: ['d:/data']\n    labels: {l1: a}\nvolumes:\n  d: {}\n");
    write(d, "b.yml", "services:\n  web:\n    image: b\n    command: z\n    volumes: ['./h:/data']\n    labels: [l2=b]\n");
    let mut o = opts(d);
    o.files = vec!["a.yml".into(), "b.yml".into()];
    let p = load(&o).expect("merges");
    let web = p.service("web").expect("web");
    assert_eq!(web["image"], "b");
    assert_eq!(web["command"], json!(["z"]));
    assert_eq!(web["volumes"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        web["volumes"][0]["source"],
        json!(d.join("h").display().to_string())
    );
    assert_eq!(web["labels"], json!({"l1": "a", "l2": "b"}));
}

#[test]
fn extends_same_and_other_file() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    write(d, "common/base.yml", "services:\n  base:\n    image: busybox\n    environment: {FROM: base}\n    volumes: ['./data:/data']\n");
    write(d, "compose.yaml", "services:\n  mid:\n    extends: {file: common/base.yml, service: base}\n    environment: {MID: '1'}\n  top:\n    extends: mid\n    command: echo top\n");
    let p = load(&opts(d)).expect("extends resolve");
    let top = p.service("top").expect("top");
    assert_eq!(top["image"], "busybox");
    assert_eq!(top["environment"], json!({"FROM": "base", "MID": "1"}));
    assert_eq!(top["command"], json!(["echo", "top"]));
    // Paths of the extended file are relative to that file.
    assert_eq!(
        top["volumes"][0]["source"],
        json!(d.join("common/data").display().to_string())
    );
    assert!(top.get("extends").is_none());
    write(
        d,
        "compose.yaml",
        "services:\n  a:\n    extends: b\n  b:\n    extends: a\n",
    );
    assert!(load(&opts(d))
        .expect_err("cycle")
        .to_string()
        .contains("circular"));
}

#[test]
fn include_brings_services_and_networks() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    write(
        d,
        "lib/compose.yaml",
        "services:\n  db:\n    image: db:${DBV}\n    networks: [back]\nnetworks:\n  back: {}\n",
    );
    write(d, "lib/.env", "DBV=7\n");
    write(
        d,
        "compose.yaml",
        "include:\n  - lib/compose.yaml\nservices:\n  web:\n    image: w\n    depends_on: [db]\n",
    );
    let p = load(&opts(d)).expect("include");
    assert_eq!(p.service("db").expect("db")["image"], "db:7");
    assert_eq!(
        p.section("networks")["back"]["name"],
        format!("{}_back", p.name)
    );
}

#[test]
fn profiles_select_services() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    write(d, "compose.yaml", "services:\n  web: {image: w}\n  debug: {image: d, profiles: [dev]}\n  tool: {image: t, profiles: [tools], depends_on: [helper]}\n  helper: {image: h, profiles: [tools]}\n");
    let names = |o: &LoadOptions| -> Vec<String> {
        let mut n: Vec<String> = load(o).expect("loads").services().keys().cloned().collect();
        n.sort();
        n
    };
    let mut o = opts(d);
    assert_eq!(names(&o), vec!["web"]);
    o.profiles = vec!["dev".into()];
    assert_eq!(names(&o), vec!["debug", "web"]);
    o.profiles.clear();
    o.os_env.insert("COMPOSE_PROFILES".into(), "tools".into());
    assert_eq!(names(&o), vec!["helper", "tool", "web"]);
    o.os_env.clear();
    o.services = vec!["tool".into()];
    assert_eq!(names(&o), vec!["helper", "tool", "web"]);
    o.services.clear();
    o.profiles = vec!["*".into()];
    assert_eq!(names(&o).len(), 4);
}

#[test]
fn anchors_and_merge_keys() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    write(d, "compose.yaml", "x-common: &common\n  image: busybox\n  restart: always\nx-env: &env\n  environment: {A: '1'}\nservices:\n  a:\n    <<: [*common, *env]\n    restart: 'no'\n  b: *common\n");
    let p = load(&opts(d)).expect("anchors");
    let a = p.service("a").expect("a");
    assert_eq!(a["image"], "busybox");
    assert_eq!(a["restart"], "no");
    assert_eq!(a["environment"], json!({"A": "1"}));
    assert_eq!(p.service("b").expect("b")["restart"], "always");
    assert!(!p.model.contains_key("x-common"));
}

#[test]
fn errors_are_clear() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    let cases = [
        (
            "services:\n  web:\n    image: ${NEED:?please set NEED}\n",
            "required variable NEED is missing a value: please set NEED",
        ),
        (
            "services:\n  web:\n    image: ${\n",
            "invalid interpolation format for services.web.image",
        ),
        (
            "services:\n  web:\n    image: a\n    restart: 3\n",
            "services.web.restart must be a string",
        ),
        (
            "services:\n  web:\n    image: a\n    ports: ['x:y']\n",
            "services.web.ports.0: invalid port specification \"x:y\"",
        ),
        (
            "services:\n  web:\n    image: a\n    depends_on: [db]\n",
            "service \"web\" depends on undefined service \"db\": invalid compose project",
        ),
        (
            "services:\n  web:\n    image: a\n    volumes: ['data:/d']\n",
            "refers to undefined volume data",
        ),
        (
            "services:\n  web:\n    image: a\n    networks: [front]\n",
            "refers to undefined network front",
        ),
        ("services: [\n", "yaml:"),
    ];
    for (text, want) in cases {
        write(d, "compose.yaml", text);
        let e = load(&opts(d)).expect_err(want).to_string();
        assert!(e.contains(want), "{e:?} should contain {want:?}");
    }
    let empty = tempfile::tempdir().expect("tmp");
    assert_eq!(
        load(&opts(empty.path())).expect_err("none").to_string(),
        "no configuration file provided: not found"
    );
}

#[test]
fn unset_variables_warn() {
    let t = tempfile::tempdir().expect("tmp");
    write(
        t.path(),
        "compose.yaml",
        "version: '3'\nservices:\n  web:\n    image: busybox${NOPE}\n",
    );
    let p = load(&opts(t.path())).expect("loads");
    assert_eq!(
        p.warnings[0],
        "The \"NOPE\" variable is not set. Defaulting to a blank string."
    );
    assert!(p.warnings[1].contains("`version` is obsolete"));
}

#[test]
fn merge_rules_across_files() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    write(d, "a.yml", "services:\n  web:\n    image: a\n    entrypoint: [sh, -c]\n    ports: ['80:80', '81']\n    expose: ['9000']\n    dns: [1.1.1.1]\n    environment: {A: '1', B: '2'}\n    secrets: [{source: s1, target: /run/s}]\n    volumes: ['./a:/data', './c:/cache']\nsecrets:\n  s1: {file: ./s1}\n  s2: {file: ./s2}\n");
    write(d, "b.yml", "services:\n  web:\n    entrypoint: [bash]\n    ports: ['80:80', '82']\n    expose: ['9000', '9001']\n    dns: [1.1.1.1, 8.8.8.8]\n    environment: [B=3, C=4]\n    secrets: [{source: s2, target: /run/s}]\n    volumes: ['./b:/data']\n");
    let mut o = opts(d);
    o.files = vec!["a.yml".into(), "b.yml".into()];
    let p = load(&o).expect("merges");
    let web = p.service("web").expect("web");
    assert_eq!(web["entrypoint"], json!(["bash"]));
    let published: Vec<(Value, Value)> = web["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| (p["target"].clone(), p["published"].clone()))
        .collect();
    assert_eq!(
        published,
        vec![
            (json!(80), json!("80")),
            (json!(81), Value::Null),
            (json!(82), Value::Null)
        ]
    );
    assert_eq!(web["expose"], json!(["9000", "9001"]));
    assert_eq!(web["dns"], json!(["1.1.1.1", "8.8.8.8"]));
    assert_eq!(web["environment"], json!({"A": "1", "B": "3", "C": "4"}));
    assert_eq!(
        web["secrets"],
        json!([{"source": "s2", "target": "/run/s"}])
    );
    let vols: Vec<(&str, &str)> = web["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| {
            (
                v["source"].as_str().unwrap_or(""),
                v["target"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let b = d.join("b").display().to_string();
    let c = d.join("c").display().to_string();
    assert_eq!(vols, vec![(b.as_str(), "/data"), (c.as_str(), "/cache")]);
}

#[test]
fn reset_and_override_tags_apply_to_the_base() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    write(d, "a.yml", "services:\n  web:\n    image: a\n    command: echo hi\n    ports: ['80', '81']\n    environment: {A: '1', B: '2'}\n    labels: {x: '1'}\n    dns: [1.1.1.1]\n");
    write(d, "b.yml", "services:\n  base:\n    image: b\n    ports: ['90']\n    environment: {K: v, L: w}\n  web:\n    ports: !reset []\n    command: !reset null\n    environment: !override {C: '3'}\n    labels:\n      x: !reset\n      y: '2'\n    dns: [8.8.8.8]\n  child:\n    extends: base\n    ports: !reset []\n    environment:\n      L: !reset\n      M: z\n");
    let mut o = opts(d);
    o.files = vec!["a.yml".into(), "b.yml".into()];
    let p = load(&o).expect("merges");
    let web = p.service("web").expect("web");
    assert!(web.get("ports").is_none(), "{web}");
    assert!(web.get("command").is_none(), "{web}");
    assert_eq!(web["environment"], json!({"C": "3"}));
    assert_eq!(web["labels"], json!({"y": "2"}));
    // Untagged sequences still append.
    assert_eq!(web["dns"], json!(["1.1.1.1", "8.8.8.8"]));
    // extends: the child's tags clear what the extended service gave.
    let child = p.service("child").expect("child");
    assert_eq!(child["image"], "b");
    assert!(child.get("ports").is_none(), "{child}");
    assert_eq!(child["environment"], json!({"K": "v", "M": "z"}));
    assert_eq!(p.service("base").expect("base")["ports"][0]["target"], 90);
    // Alone, a file reads as if the reset attributes were absent.
    let mut o = opts(d);
    o.files = vec!["b.yml".into()];
    o.no_consistency = true;
    let p = load(&o).expect("b alone");
    assert_eq!(p.service("web").expect("web")["labels"], json!({"y": "2"}));
}

#[test]
fn yaml_errors_name_file_line_and_column() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    write(
        d,
        "compose.yaml",
        "services:\n  web:\n    image: busybox\n    ports: [80\n",
    );
    let e = load(&opts(d)).expect_err("bad yaml").to_string();
    let file = d.join("compose.yaml").display().to_string();
    let re =
        regex::Regex::new(&format!(r"^yaml: {}:\d+:\d+: \S", regex::escape(&file))).expect("regex");
    assert!(re.is_match(&e), "{e}");
    write(
        d,
        "compose.yaml",
        "services:\n  web:\n    image: busybox\n    ports:\n      - 80\n      - target: x\n    restart: 'no'\n",
    );
    let e = load(&opts(d)).expect_err("schema").to_string();
    assert!(
        e.starts_with(&format!("{file}:6: services.web.ports.1")),
        "{e}"
    );
    write(
        d,
        "compose.yaml",
        "services:\n  web:\n    image: busybox\n    ports:\n      - 80\n      - {target: 1, foo: 2}\n",
    );
    let e = load(&opts(d)).expect_err("schema").to_string();
    assert!(
        e.starts_with(&format!("validating {file}:6: services.web.ports.1")),
        "{e}"
    );
}

#[test]
fn shared_namespaces_and_volumes_imply_dependencies() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    write(d, "compose.yaml", "services:\n  web: {image: w}\n  side: {image: s, network_mode: 'service:web', volumes_from: ['data:ro', 'container:other']}\n  data: {image: d, depends_on: {web: {condition: service_healthy}}, links: ['web:w']}\n");
    let p = load(&opts(d)).expect("loads");
    let side = p.service("side").expect("side");
    assert_eq!(
        side["depends_on"],
        json!({
            "web": {"condition": "service_started", "required": true, "restart": true},
            "data": {"condition": "service_started", "required": true, "restart": true},
        })
    );
    // An explicit entry is kept as written.
    assert_eq!(
        p.service("data").expect("data")["depends_on"]["web"]["condition"],
        "service_healthy"
    );
}

#[test]
fn env_file_option_replaces_dot_env() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    write(
        d,
        "compose.yaml",
        "services:\n  web:\n    image: ${IMG}:${TAG:-latest}\n",
    );
    write(d, ".env", "IMG=fromdotenv\nTAG=1\n");
    write(d, "a.env", "IMG=froma\n");
    write(d, "b.env", "IMG=fromb\nTAG=2\n");
    assert_eq!(
        load(&opts(d)).expect("loads").service("web").expect("web")["image"],
        "fromdotenv:1"
    );
    // --env-file replaces .env (TAG from .env is not read); later files win.
    let mut o = opts(d);
    o.env_files = vec!["a.env".into()];
    assert_eq!(
        load(&o).expect("loads").service("web").expect("web")["image"],
        "froma:latest"
    );
    o.env_files = vec!["a.env".into(), "b.env".into()];
    assert_eq!(
        load(&o).expect("loads").service("web").expect("web")["image"],
        "fromb:2"
    );
}
