//! Interoperability with a real dockerd (Debian's docker.io, dockerd 20.10 + containerd 1.6),
//! started privately by `berth_e2e::Dockerd` next to a private berthd:
//! - `berth save` / `docker save` from berthd load into dockerd and run there, and dockerd's
//!   `docker save` loads into berthd and runs; the image id survives both ways (berthd writes
//!   the OCI layout plus `manifest.json`, dockerd 20.10 the legacy layout; both carry the same
//!   config blob, and the id is its digest);
//! - dockerd pushes to and pulls from `berth-registry`, and berthd pulls what dockerd pushed
//!   and the other way round (manifest digests match between the two pulls);
//! - the same docker CLI commands against both daemons give the same output and exit codes
//!   where Docker's output is deterministic (ids and times are normalised; messages that
//!   changed between dockerd 20.10 and Docker 28 are compared by exit code only, berthd
//!   following Docker 28).

use berth_e2e::{require, stdout, text, Daemon, Dockerd, Registry};
use std::process::Output;

fn ok(o: Output, what: &str) -> String {
    assert!(o.status.success(), "{what} failed: {}", text(&o));
    stdout(&o)
}

fn image_id(out: Output) -> String {
    ok(out, "image inspect").trim().to_string()
}

/// Both daemons with the busybox fixture, or None when dockerd is missing outside CI.
fn pair() -> Option<(Daemon, Dockerd)> {
    if !require("docker") {
        return None;
    }
    let dd = Dockerd::start()?;
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    dd.import_busybox("busybox:latest");
    Some((d, dd))
}

#[test]
fn berthd_save_loads_and_runs_in_dockerd() {
    let Some((d, dd)) = pair() else { return };
    ok(d.docker(&["tag", "busybox", "fromberth:v1"]), "tag");
    let id = image_id(d.docker(&["image", "inspect", "-f", "{{.Id}}", "fromberth:v1"]));
    // Through the docker CLI against berthd, and through `berth save`.
    for (how, tar) in [("docker", "docker-save.tar"), ("berth", "berth-save.tar")] {
        let path = d.dir.path().join(tar);
        let p = path.to_str().expect("utf8");
        let out = if how == "docker" {
            d.docker(&["save", "-o", p, "fromberth:v1"])
        } else {
            d.berth(&["save", "-o", p, "fromberth:v1"])
        };
        ok(out, &format!("{how} save"));
        let loaded = ok(dd.docker(&["load", "-i", p]), "dockerd load");
        assert!(loaded.contains("Loaded image: fromberth:v1"), "{loaded}");
        assert_eq!(
            image_id(dd.docker(&["image", "inspect", "-f", "{{.Id}}", "fromberth:v1"])),
            id,
            "dockerd keeps berthd's image id ({how} save)"
        );
        let o = dd.docker(&["run", "--rm", "fromberth:v1", "echo", "ran in dockerd"]);
        assert_eq!(ok(o, "dockerd run"), "ran in dockerd\n");
        ok(dd.docker(&["rmi", "fromberth:v1"]), "dockerd rmi");
    }
    // An image saved by id loads untagged with the same id.
    let p = d.dir.path().join("by-id.tar");
    ok(
        d.docker(&["save", "-o", p.to_str().expect("utf8"), &id]),
        "save by id",
    );
    let loaded = ok(
        dd.docker(&["load", "-i", p.to_str().expect("utf8")]),
        "load by id",
    );
    assert!(
        loaded.contains(&format!("Loaded image ID: {id}")),
        "{loaded}"
    );
}

#[test]
fn dockerd_save_loads_and_runs_in_berthd() {
    let Some((d, dd)) = pair() else { return };
    ok(dd.docker(&["tag", "busybox", "fromdocker:v1"]), "tag");
    let id = image_id(dd.docker(&["image", "inspect", "-f", "{{.Id}}", "fromdocker:v1"]));
    let p = dd.dir.path().join("dockerd-save.tar");
    let ps = p.to_str().expect("utf8");
    ok(
        dd.docker(&["save", "-o", ps, "fromdocker:v1"]),
        "dockerd save",
    );
    // `berth load` and `docker load` against berthd.
    for how in ["berth", "docker"] {
        let out = if how == "berth" {
            d.berth(&["load", "-i", ps])
        } else {
            d.docker(&["load", "-i", ps])
        };
        let loaded = ok(out, &format!("{how} load"));
        assert!(loaded.contains("Loaded image: fromdocker:v1"), "{loaded}");
        assert_eq!(
            image_id(d.docker(&["image", "inspect", "-f", "{{.Id}}", "fromdocker:v1"])),
            id,
            "berthd keeps dockerd's image id ({how} load)"
        );
        let o = d.docker(&["run", "--rm", "fromdocker:v1", "echo", "ran in berthd"]);
        assert_eq!(ok(o, "berthd run"), "ran in berthd\n");
    }
    // Round trip: berthd saves what it loaded, dockerd loads it back under the same id.
    ok(dd.docker(&["rmi", "fromdocker:v1"]), "dockerd rmi");
    let back = d.dir.path().join("back.tar");
    let bs = back.to_str().expect("utf8");
    ok(d.berth(&["save", "-o", bs, "fromdocker:v1"]), "berth save");
    ok(dd.docker(&["load", "-i", bs]), "dockerd load back");
    assert_eq!(
        image_id(dd.docker(&["image", "inspect", "-f", "{{.Id}}", "fromdocker:v1"])),
        id
    );
}

fn digest_line(push_output: &str) -> String {
    push_output
        .lines()
        .find_map(|l| l.split("digest: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest in push output: {push_output}"))
        .to_string()
}

#[test]
fn push_and_pull_across_daemons_through_berth_registry() {
    let Some((d, dd)) = pair() else { return };
    let reg = Registry::berth(|_| vec![]);
    let r = format!("127.0.0.1:{}", reg.port);

    // dockerd pushes, berthd pulls and runs.
    let from_dd = format!("{r}/interop/fromdockerd:v1");
    ok(dd.docker(&["tag", "busybox", &from_dd]), "dockerd tag");
    let dd_id = image_id(dd.docker(&["image", "inspect", "-f", "{{.Id}}", &from_dd]));
    let pushed = ok(dd.docker(&["push", &from_dd]), "dockerd push");
    let digest = digest_line(&pushed);
    let pulled = ok(d.docker(&["pull", &from_dd]), "berthd pull");
    assert!(pulled.contains(&format!("Digest: {digest}")), "{pulled}");
    assert_eq!(
        image_id(d.docker(&["image", "inspect", "-f", "{{.Id}}", &from_dd])),
        dd_id,
        "berthd pulls dockerd's image id"
    );
    let o = d.docker(&["run", "--rm", &from_dd, "echo", "pushed by dockerd"]);
    assert_eq!(ok(o, "berthd run"), "pushed by dockerd\n");
    let digests = ok(
        d.docker(&["image", "inspect", "-f", "{{json .RepoDigests}}", &from_dd]),
        "repo digests",
    );
    assert!(digests.contains(&digest), "{digests}");
    // `berth pull` of the same reference by digest.
    ok(
        d.berth(&["pull", &format!("{r}/interop/fromdockerd@{digest}")]),
        "berth pull by digest",
    );

    // berthd pushes, dockerd pulls and runs.
    let from_b = format!("{r}/interop/fromberth:v2");
    ok(d.docker(&["tag", "busybox", &from_b]), "berthd tag");
    let b_id = image_id(d.docker(&["image", "inspect", "-f", "{{.Id}}", &from_b]));
    let pushed = ok(d.docker(&["push", &from_b]), "berthd push");
    let digest = digest_line(&pushed);
    let pulled = ok(dd.docker(&["pull", &from_b]), "dockerd pull");
    assert!(pulled.contains(&format!("Digest: {digest}")), "{pulled}");
    assert_eq!(
        image_id(dd.docker(&["image", "inspect", "-f", "{{.Id}}", &from_b])),
        b_id,
        "dockerd pulls berthd's image id"
    );
    let o = dd.docker(&["run", "--rm", &from_b, "echo", "pushed by berthd"]);
    assert_eq!(ok(o, "dockerd run"), "pushed by berthd\n");

    // And `berth push` of a retagged image, pulled by dockerd.
    let from_cli = format!("{r}/interop/fromberthcli:v3");
    ok(d.berth(&["tag", "busybox", &from_cli]), "berth tag");
    ok(d.berth(&["push", &from_cli]), "berth push");
    ok(
        dd.docker(&["pull", &from_cli]),
        "dockerd pull of berth push",
    );
    let o = dd.docker(&["run", "--rm", &from_cli, "true"]);
    ok(o, "dockerd run of berth push");
}

/// Output with 64- and 12-hex ids replaced by `<id>`, so two daemons' answers compare.
fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let run = b[i..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
        let boundary_before = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        let boundary_after = b.get(i + run).is_none_or(|c| !c.is_ascii_alphanumeric());
        if (run == 64 || run == 12) && boundary_before && boundary_after {
            out.push_str("<id>");
            i += run;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// How two daemons' answers to one command are compared.
#[derive(Clone, Copy, PartialEq)]
enum Cmp {
    /// Exit code, stdout and stderr (normalised).
    All,
    /// Exit code and stdout; stderr differs between dockerd 20.10 and Docker 28 wording.
    Stdout,
    /// Exit code only.
    Code,
}

#[test]
fn same_cli_commands_same_answers() {
    let Some((d, dd)) = pair() else { return };
    let steps: &[(Cmp, &[&str])] = &[
        (
            Cmp::Code,
            &[
                "create",
                "--name",
                "c1",
                "--network",
                "none",
                "busybox",
                "sh",
                "-c",
                "echo out; echo err >&2; exit 3",
            ],
        ),
        (
            Cmp::All,
            &[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.Running}} {{.State.ExitCode}} {{.Name}} {{.Config.Cmd}} {{.Path}} {{.Args}} {{.HostConfig.NetworkMode}} {{.RestartCount}} {{.Platform}} {{.HostConfig.PidsLimit}} {{.HostConfig.MemorySwappiness}} {{.HostConfig.ReadonlyPaths}}",
                "c1",
            ],
        ),
        // dockerd 20.10 masks one path fewer than Docker 28 (no /sys/devices/virtual/powercap).
        (
            Cmp::All,
            &["inspect", "-f", "{{index .HostConfig.MaskedPaths 0}}", "c1"],
        ),
        (Cmp::All, &["start", "c1"]),
        (Cmp::All, &["wait", "c1"]),
        (Cmp::All, &["logs", "c1"]),
        (
            Cmp::All,
            &[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.Running}} {{.State.ExitCode}} {{.State.Error}} {{.State.OOMKilled}} {{.State.Dead}} {{.State.Pid}}",
                "c1",
            ],
        ),
        (
            Cmp::All,
            &[
                "ps",
                "-a",
                "--format",
                "{{.Names}}|{{.Command}}|{{.Image}}",
            ],
        ),
        (Cmp::All, &["start", "c1", "nosuch"]),
        (Cmp::All, &["rm", "nosuch"]),
        (Cmp::All, &["kill", "nosuch"]),
        (Cmp::All, &["kill", "c1"]),
        (Cmp::All, &["pause", "c1"]),
        (Cmp::All, &["unpause", "c1"]),
        (Cmp::All, &["restart", "nosuch"]),
        (Cmp::All, &["wait", "nosuch"]),
        (Cmp::All, &["logs", "nosuch"]),
        (Cmp::All, &["top", "nosuch"]),
        (Cmp::All, &["port", "nosuch"]),
        (Cmp::All, &["rename", "nosuch", "x"]),
        (Cmp::All, &["inspect", "nosuch"]),
        (Cmp::All, &["inspect", "--type", "container", "nosuch"]),
        (Cmp::All, &["tag", "busybox", "nosuch@@"]),
        (Cmp::All, &["rmi", "nosuch:tag"]),
        (Cmp::All, &["rmi", "-f", "nosuchimg"]),
        // rmi conflicts: a container's only tag, then an id with several tags.
        (Cmp::All, &["tag", "busybox", "solo:1"]),
        (Cmp::All, &["rmi", "busybox"]),
        (Cmp::All, &["rmi", "solo:1"]),
        (Cmp::All, &["tag", "solo:1", "busybox:latest"]),
        (Cmp::All, &["rmi", "@ID"]),
        (Cmp::All, &["rmi", "solo:1"]),
        (Cmp::All, &["rm", "c1"]),
        // A running container: exec, rm refusal, stop.
        (
            Cmp::Code,
            &[
                "run", "-d", "--name", "c2", "--network", "none", "busybox", "sleep", "100",
            ],
        ),
        (Cmp::All, &["exec", "c2", "sh", "-c", "echo exec-out; exit 4"]),
        (Cmp::Stdout, &["exec", "c2", "nosuchcmd"]),
        // Same code and "permission denied"; crun's error does not name the binary.
        (Cmp::Code, &["exec", "c2", "/etc"]),
        (Cmp::All, &["exec", "nosuch", "true"]),
        (Cmp::Stdout, &["rm", "c2"]),
        (Cmp::Stdout, &["rmi", "@ID"]),
        (Cmp::All, &["ps", "--format", "{{.Names}}|{{.Command}}"]),
        (Cmp::All, &["stop", "-t", "1", "c2"]),
        (
            Cmp::All,
            &["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "c2"],
        ),
        (Cmp::All, &["rm", "c2"]),
        // docker run's own exit codes (125, 126, 127, the command's).
        (
            Cmp::All,
            &[
                "run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo a b; exit 7",
            ],
        ),
        (
            Cmp::Code,
            &["run", "--rm", "--network", "none", "busybox", "nosuchcmd"],
        ),
        (
            Cmp::Code,
            &["run", "--rm", "--network", "none", "busybox", "/etc"],
        ),
        (Cmp::Code, &["run", "--rm", "--bogus-flag", "busybox"]),
        (Cmp::Code, &["create", "--name", "c3", "busybox", "true"]),
        (Cmp::All, &["create", "--name", "c3", "busybox", "true"]),
        (Cmp::All, &["rm", "c3"]),
        (
            Cmp::All,
            &[
                "image",
                "inspect",
                "-f",
                "{{.Os}} {{.Architecture}} {{.RootFS.Type}} {{len .RootFS.Layers}} {{.Comment}}",
                "busybox",
            ],
        ),
        (
            Cmp::All,
            &["history", "--format", "{{.CreatedBy}}|{{.Comment}}", "busybox"],
        ),
        (
            Cmp::All,
            &["images", "--format", "{{.Repository}}:{{.Tag}}", "busybox"],
        ),
        (Cmp::Code, &["run", "--network", "none", "busybox", "true"]),
        (Cmp::Code, &["container", "prune", "-f"]),
        (Cmp::All, &["ps", "-aq"]),
    ];
    // `@ID` stands for each daemon's own busybox image id (short form).
    let short_id = |o: Output| image_id(o).trim_start_matches("sha256:")[..12].to_string();
    let dd_id = short_id(dd.docker(&["image", "inspect", "-f", "{{.Id}}", "busybox"]));
    let b_id = short_id(d.docker(&["image", "inspect", "-f", "{{.Id}}", "busybox"]));
    let mut diffs = Vec::new();
    for (cmp, args) in steps {
        let with_id = |id: &str| -> Vec<String> {
            args.iter()
                .map(|a| {
                    if *a == "@ID" {
                        id.to_string()
                    } else {
                        a.to_string()
                    }
                })
                .collect()
        };
        let (wa, ga) = (with_id(&dd_id), with_id(&b_id));
        let want = dd.docker(&wa.iter().map(String::as_str).collect::<Vec<_>>());
        let got = d.docker(&ga.iter().map(String::as_str).collect::<Vec<_>>());
        let same = want.status.code() == got.status.code()
            && (*cmp == Cmp::Code || normalise(&stdout(&want)) == normalise(&stdout(&got)))
            && (*cmp != Cmp::All
                || normalise(&String::from_utf8_lossy(&want.stderr))
                    == normalise(&String::from_utf8_lossy(&got.stderr)));
        if !same {
            diffs.push(format!(
                "docker {}\n--- dockerd\n{}\n--- berthd\n{}",
                args.join(" "),
                text(&want),
                text(&got)
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {} commands differ:\n\n{}",
        diffs.len(),
        steps.len(),
        diffs.join("\n\n")
    );
}
