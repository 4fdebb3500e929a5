//! Volumes, bind mounts and tmpfs through the real docker CLI (and `berth` where it has the
//! commands): persistence across container removal and berthd crashes, copy-up, read-only
//! binds, tmpfs limits, `rm -v`, `--rm`, prune, `--volumes-from`, and inspect's `Mounts`.

use berth_e2e::*;
use serde_json::Value;
use std::process::Output;

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    stdout(&o)
}

/// Asserts that `out` is a failure whose output contains `want`.
fn refused(out: &Output, want: &str) {
    assert!(!out.status.success(), "succeeded: {}", text(out));
    assert!(text(out).contains(want), "{}", text(out));
}

fn json(o: Output) -> Value {
    let s = ok(o);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("bad json ({e}): {s}"))
}

fn volume_names(d: &Daemon) -> Vec<String> {
    ok(d.docker(&["volume", "ls", "-q"]))
        .lines()
        .map(str::to_string)
        .collect()
}

/// busybox plus /data (owner 1000:1000, mode 750, with a file) declared as a VOLUME.
fn import_data_image(d: &Daemon, name: &str) {
    let work = d.dir.path().join("img");
    let data = work.join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("seed.txt"), "seeded\n").expect("seed");
    let tar = work.join("image.tar");
    std::fs::copy(busybox_tar(), &tar).expect("copy fixture");
    let st = std::process::Command::new("chmod")
        .args(["750", data.to_str().expect("utf8")])
        .status()
        .expect("chmod");
    assert!(st.success());
    let st = std::process::Command::new("tar")
        .args(["-rf", tar.to_str().expect("utf8"), "-C"])
        .arg(&work)
        .args(["--owner=1000", "--group=1000", "./data"])
        .status()
        .expect("tar");
    assert!(st.success(), "tar -r failed");
    ok(d.docker(&[
        "import",
        "-c",
        "VOLUME /data",
        tar.to_str().expect("utf8"),
        name,
    ]));
}

#[test]
fn named_volume_survives_rm_and_crash() {
    let mut d = Daemon::start();
    d.import_busybox("busybox");
    let vol = unique("data");
    assert_eq!(ok(d.docker(&["volume", "create", &vol])).trim(), vol);
    let v = json(d.docker(&["volume", "inspect", &vol]));
    assert_eq!(v[0]["Name"], vol.as_str());
    assert_eq!(v[0]["Driver"], "local");
    assert_eq!(v[0]["Scope"], "local");
    let mp = v[0]["Mountpoint"].as_str().expect("mountpoint").to_string();
    assert!(mp.ends_with(&format!("volumes/{vol}/_data")), "{mp}");
    assert!(ok(d.berth(&["volume", "ls"])).contains(&vol));

    let bind = format!("{vol}:/data");
    ok(d.docker(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "echo one > /data/f",
    ]));
    // A container killed with berthd crashed: what it wrote stays.
    let name = unique("writer");
    ok(d.docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "echo two >> /data/f; sync; sleep 300",
    ]));
    std::thread::sleep(std::time::Duration::from_millis(500));
    d.crash();
    d.spawn();
    assert_eq!(
        ok(d.docker(&["inspect", "-f", "{{.State.Running}}", &name])).trim(),
        "true"
    );
    // In use (by a running and by a stopped container): 409 naming the container.
    let out = d.docker(&["volume", "rm", &vol]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("volume is in use"), "{err}");
    ok(d.docker(&["rm", "-f", &name]));
    d.crash();
    d.spawn();
    let out = ok(d.docker(&["run", "--rm", "-v", &bind, "busybox", "cat", "/data/f"]));
    assert_eq!(out, "one\ntwo\n");
    let stopped = unique("stopped");
    ok(d.docker(&["create", "--name", &stopped, "-v", &bind, "busybox", "true"]));
    let out = d.berth(&["volume", "rm", &vol]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("volume is in use"), "{}", text(&out));
    // rm -v never removes a named volume.
    ok(d.docker(&["rm", "-v", &stopped]));
    assert!(volume_names(&d).contains(&vol));
    // system df counts it.
    let df = ok(d.docker(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]));
    assert!(df.contains("Local Volumes 1"), "{df}");
    ok(d.docker(&["volume", "rm", &vol]));
    assert!(!volume_names(&d).contains(&vol));
    assert!(!std::path::Path::new(&mp).exists());
    let out = d.docker(&["volume", "inspect", &vol]);
    refused(&out, "no such volume");
}

#[test]
fn copy_up_keeps_ownership_and_nocopy_skips() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    import_data_image(&d, "datimg");
    // A named volume on /etc gets the image's passwd.
    let etc = unique("etc");
    let out = ok(d.docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{etc}:/etc"),
        "busybox",
        "cat",
        "/etc/passwd",
    ]));
    assert!(out.starts_with("root:x:0:0"), "{out}");
    let mp = json(d.docker(&["volume", "inspect", &etc]))[0]["Mountpoint"]
        .as_str()
        .expect("mountpoint")
        .to_string();
    assert!(std::path::Path::new(&mp).join("passwd").exists());
    // Owner, mode and content of the image's directory come along.
    let v = unique("own");
    let out = ok(d.docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{v}:/data"),
        "datimg",
        "sh",
        "-c",
        "stat -c '%u:%g %a' /data; cat /data/seed.txt",
    ]));
    assert_eq!(out, "1000:1000 750\nseeded\n");
    // volume-nocopy: the volume stays empty.
    let n = unique("nocopy");
    let out = ok(d.docker(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=volume,src={n},dst=/data,volume-nocopy"),
        "datimg",
        "ls",
        "-A",
        "/data",
    ]));
    assert_eq!(out, "");
    // The image's VOLUME becomes an anonymous volume, copied up, removed by rm -v.
    let c = unique("anon");
    ok(d.docker(&["run", "--name", &c, "datimg", "cat", "/data/seed.txt"]));
    let mounts = json(d.docker(&["inspect", "-f", "{{json .Mounts}}", &c]));
    assert_eq!(mounts.as_array().expect("array").len(), 1, "{mounts}");
    let m = &mounts[0];
    assert_eq!(m["Type"], "volume");
    assert_eq!(m["Destination"], "/data");
    assert_eq!(m["Driver"], "local");
    assert_eq!(m["Mode"], "");
    assert_eq!(m["RW"], true);
    assert_eq!(m["Propagation"], "");
    let anon = m["Name"].as_str().expect("name").to_string();
    assert_eq!(anon.len(), 64, "{anon}");
    assert!(volume_names(&d).contains(&anon));
    let ps = ok(d.docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("volume={anon}"),
        "--format",
        "{{.Names}}",
    ]));
    assert_eq!(ps.trim(), c);
    ok(d.docker(&["rm", "-v", &c]));
    assert!(!volume_names(&d).contains(&anon));
    // --rm removes the anonymous volume too (and -v /path is one).
    let before = volume_names(&d);
    ok(d.docker(&[
        "run",
        "--rm",
        "-v",
        "/scratch",
        "busybox",
        "touch",
        "/scratch/x",
    ]));
    ok(d.docker(&["run", "--rm", "datimg", "true"]));
    assert_eq!(volume_names(&d), before);
}

#[test]
fn binds_tmpfs_and_read_only_rootfs() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let host = d.dir.path().join("hostdir");
    std::fs::create_dir_all(&host).expect("mkdir");
    std::fs::write(host.join("in.txt"), "from host\n").expect("write");
    let h = host.to_str().expect("utf8");
    // Read-only bind: reads work, writes fail.
    let out = d.docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{h}:/data:ro"),
        "busybox",
        "sh",
        "-c",
        "cat /data/in.txt && echo x > /data/new",
    ]);
    assert_eq!(stdout(&out), "from host\n");
    refused(&out, "Read-only file system");
    // Read-write bind: the host sees the write.
    ok(d.docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{h}:/data"),
        "busybox",
        "sh",
        "-c",
        "echo back > /data/out.txt",
    ]));
    assert_eq!(
        std::fs::read_to_string(host.join("out.txt")).expect("read"),
        "back\n"
    );
    // -v creates a missing host directory; --mount refuses it with docker's message.
    let missing = d.dir.path().join("made-by-v");
    let m = missing.to_str().expect("utf8");
    let c = unique("bind");
    ok(d.docker(&[
        "run",
        "--name",
        &c,
        "-v",
        &format!("{m}:/m"),
        "busybox",
        "true",
    ]));
    assert!(missing.is_dir());
    let mounts = json(d.docker(&["inspect", "-f", "{{json .Mounts}}", &c]));
    assert_eq!(
        mounts,
        serde_json::json!([{"Type":"bind","Source":m,"Destination":"/m","Mode":"","RW":true,"Propagation":"rprivate"}])
    );
    let binds = ok(d.docker(&["inspect", "-f", "{{json .HostConfig.Binds}}", &c]));
    assert_eq!(binds.trim(), format!("[\"{m}:/m\"]"));
    let gone = d.dir.path().join("not-there");
    let out = d.docker(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,source={},target=/x", gone.display()),
        "busybox",
        "true",
    ]);
    refused(
        &out,
        &format!(
            "invalid mount config for type \"bind\": bind source path does not exist: {}",
            gone.display()
        ),
    );
    // tmpfs with a size: 2 MB do not fit in 1 MB.
    let out = d.docker(&[
        "run",
        "--rm",
        "--tmpfs",
        "/t:size=1m",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/t/big bs=1024 count=2048",
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("No space left on device"),
        "{}",
        text(&out)
    );
    ok(d.docker(&[
        "run",
        "--rm",
        "--tmpfs",
        "/t:size=1m",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/t/small bs=1024 count=512",
    ]));
    // --mount type=tmpfs shows up in Mounts.
    let c = unique("tmpfs");
    ok(d.docker(&[
        "create",
        "--name",
        &c,
        "--mount",
        "type=tmpfs,target=/scratch",
        "busybox",
        "true",
    ]));
    let mounts = json(d.docker(&["inspect", "-f", "{{json .Mounts}}", &c]));
    assert_eq!(
        mounts,
        serde_json::json!([{"Type":"tmpfs","Source":"","Destination":"/scratch","Mode":"","RW":true,"Propagation":""}])
    );
    // --read-only: the rootfs refuses writes, tmpfs and volumes take them.
    let out = d.docker(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/t",
        "-v",
        "/vol",
        "busybox",
        "sh",
        "-c",
        "echo a > /t/a && echo b > /vol/b && cat /t/a /vol/b && touch /rootfile",
    ]);
    assert_eq!(stdout(&out), "a\nb\n");
    refused(&out, "Read-only file system");
    // Invalid specs are refused at create with a 400 naming the problem.
    let out = d.docker(&["create", "-v", "/a:/b:bogus", "busybox", "true"]);
    refused(&out, "invalid mode: bogus");
}

#[test]
fn prune_and_volumes_from() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    // --volumes-from shares the volumes, :ro makes them read-only.
    let shared = unique("shared");
    let src = unique("src");
    ok(d.docker(&[
        "run",
        "--name",
        &src,
        "-v",
        &format!("{shared}:/s"),
        "-v",
        "/anon",
        "busybox",
        "sh",
        "-c",
        "echo hi > /s/f; echo an > /anon/g",
    ]));
    let out = ok(d.docker(&[
        "run",
        "--rm",
        "--volumes-from",
        &src,
        "busybox",
        "cat",
        "/s/f",
        "/anon/g",
    ]));
    assert_eq!(out, "hi\nan\n");
    let out = d.docker(&[
        "run",
        "--rm",
        "--volumes-from",
        &format!("{src}:ro"),
        "busybox",
        "sh",
        "-c",
        "echo x > /s/f",
    ]);
    refused(&out, "Read-only file system");
    let mounts = json(d.docker(&["inspect", "-f", "{{json .Mounts}}", &src]));
    let named = mounts
        .as_array()
        .expect("array")
        .iter()
        .find(|m| m["Destination"] == "/s")
        .expect("/s mount")
        .clone();
    assert_eq!(named["Name"], shared.as_str());
    assert_eq!(named["Mode"], "z");
    // While the source container exists, nothing of it is pruned.
    let before = volume_names(&d);
    ok(d.docker(&["volume", "prune", "-af"]));
    assert_eq!(volume_names(&d), before);
    ok(d.docker(&["rm", &src]));
    // Unused: an anonymous one (from -v /anon), a named one, and a labelled named one.
    let keep = unique("keep");
    ok(d.docker(&["volume", "create", "--label", "keep=yes", &keep]));
    let out = ok(d.docker(&["volume", "prune", "-f"]));
    assert!(out.contains("Total reclaimed space"), "{out}");
    let names = volume_names(&d);
    assert!(
        names.contains(&shared) && names.contains(&keep),
        "{names:?}"
    );
    assert_eq!(names.len(), 2, "anonymous volume not pruned: {names:?}");
    let dangling = ok(d.docker(&["volume", "ls", "-q", "--filter", "dangling=true"]));
    assert_eq!(dangling.lines().count(), 2);
    ok(d.docker(&["volume", "prune", "-af", "--filter", "label!=keep"]));
    assert_eq!(volume_names(&d), vec![keep.clone()]);
    let out = ok(d.berth(&["volume", "ls", "-q", "--filter", "label=keep=yes"]));
    assert_eq!(out.trim(), keep);
    ok(d.berth(&["volume", "prune", "-a", "-f"]));
    assert!(volume_names(&d).is_empty());
}

/// One request over the daemon's socket: (status, body as JSON or `null`).
fn api(d: &Daemon, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let sock = d.socket.to_string_lossy().into_owned();
    let url = format!("http://localhost{path}");
    let mut args = vec![
        "-s",
        "-w",
        "\n%{http_code}",
        "--unix-socket",
        &sock,
        "-X",
        method,
    ];
    if let Some(b) = body {
        args.extend(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    args.push(&url);
    let out = std::process::Command::new("curl")
        .args(&args)
        .output()
        .expect("run curl");
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = s.rsplit_once('\n').expect("status line");
    (
        code.trim().parse().expect("http code"),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// A tmpfs mounted on a fresh directory, unmounted (submounts first) when dropped.
struct HostMount(std::path::PathBuf);

impl HostMount {
    fn new(path: std::path::PathBuf, propagation: &str) -> HostMount {
        std::fs::create_dir_all(&path).expect("mkdir");
        let p = path.to_str().expect("utf8");
        let run = |args: &[&str]| {
            let st = std::process::Command::new("mount")
                .args(args)
                .status()
                .expect("mount");
            assert!(st.success(), "mount {args:?}");
        };
        run(&["-t", "tmpfs", "tmpfs", p]);
        run(&[&format!("--make-{propagation}"), p]);
        HostMount(path)
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-R", "-l"])
            .arg(&self.0)
            .status();
    }
}

#[test]
fn propagation_and_non_recursive_binds() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    // A private source: slave and shared propagation are refused, as by dockerd.
    let private = HostMount::new(d.dir.path().join("private"), "private");
    let p = private.0.to_str().expect("utf8").to_string();
    let out = d.docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{p}:/p:rslave"),
        "busybox",
        "true",
    ]);
    refused(
        &out,
        &format!("path {p} is mounted on {p} but it is not a shared or slave mount"),
    );
    let out = d.docker(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,src={p},dst=/p,bind-propagation=rshared"),
        "busybox",
        "true",
    ]);
    refused(
        &out,
        &format!("path {p} is mounted on {p} but it is not a shared mount"),
    );
    // A shared source: a mount made on the host after start shows up in an rslave bind.
    let shared = HostMount::new(d.dir.path().join("shared"), "shared");
    let s = shared.0.to_str().expect("utf8").to_string();
    let c = unique("slave");
    ok(d.docker(&[
        "run",
        "-d",
        "--name",
        &c,
        "-v",
        &format!("{s}:/s:rslave"),
        "busybox",
        "sleep",
        "300",
    ]));
    let sub = shared.0.join("sub");
    std::fs::create_dir_all(&sub).expect("mkdir sub");
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&sub)
        .status()
        .expect("mount sub");
    assert!(st.success());
    std::fs::write(sub.join("late"), "x").expect("write");
    assert_eq!(ok(d.docker(&["exec", &c, "ls", "/s/sub"])).trim(), "late");
    ok(d.docker(&["rm", "-f", &c]));
    // bind-recursive=disabled: the submount stays out; the default rbind brings it.
    let ls = |extra: &str| {
        ok(d.docker(&[
            "run",
            "--rm",
            "--mount",
            &format!("type=bind,src={s},dst=/r{extra}"),
            "busybox",
            "ls",
            "/r/sub",
        ]))
    };
    assert_eq!(ls("").trim(), "late");
    assert_eq!(ls(",bind-recursive=disabled").trim(), "");
    // Read-only binds are recursively read-only (the submount too), unless writable.
    let touch = |extra: &str| {
        d.docker(&[
            "run",
            "--rm",
            "--mount",
            &format!("type=bind,src={s},dst=/r,readonly{extra}"),
            "busybox",
            "touch",
            "/r/sub/new",
        ])
    };
    let out = touch("");
    refused(&out, "Read-only file system");
    ok(touch(",bind-recursive=writable"));
    assert!(sub.join("new").exists());
    // The berth CLI sends the same request.
    let out = ok(d.berth(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,src={s},dst=/r,bind-recursive=disabled"),
        "busybox",
        "ls",
        "/r/sub",
    ]));
    assert_eq!(out.trim(), "");
}

#[test]
fn volume_api_details() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    // An unnamed `volume create` gets a random name but is not anonymous.
    let (code, v) = api(&d, "POST", "/v1.47/volumes/create", Some("{}"));
    assert_eq!(code, 201, "{v}");
    let unnamed = v["Name"].as_str().expect("name").to_string();
    assert_eq!(unnamed.len(), 64);
    assert_eq!(v["Labels"], serde_json::json!({}), "{v}");
    ok(d.docker(&["volume", "create", "named1"]));
    ok(d.docker(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=1m",
        "tmp1",
    ]));
    // An anonymous one, left over by a removed container.
    let c = unique("anon");
    ok(d.docker(&["create", "--name", &c, "-v", "/a", "busybox", "true"]));
    let anon = json(d.docker(&["inspect", "-f", "{{json .Mounts}}", &c]))[0]["Name"]
        .as_str()
        .expect("anon name")
        .to_string();
    ok(d.docker(&["rm", &c]));
    // Volume ls filters: name is a regular expression, as in dockerd.
    let ls = |f: &str| {
        let mut v: Vec<String> = ok(d.docker(&["volume", "ls", "-q", "-f", f]))
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(ls("name=^named"), ["named1"]);
    assert_eq!(ls("name=med1$"), ["named1"]);
    assert_eq!(ls("driver=local").len(), 4);
    let out = d.docker(&["volume", "ls", "-f", "dangling=maybe"]);
    assert!(
        text(&out).contains("invalid filter 'dangling=[maybe]'"),
        "{}",
        text(&out)
    );
    // system df (API 1.42+) answers only the parts asked for, and leaves out volumes
    // with driver options (their data is not on the data root's disk).
    let (code, df) = api(&d, "GET", "/v1.47/system/df?type=volume", None);
    assert_eq!(code, 200, "{df}");
    let keys: Vec<&String> = df.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["Volumes"], "{df}");
    let mut names: Vec<&str> = df["Volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| v["Name"].as_str().expect("name"))
        .collect();
    names.sort();
    let mut want = vec![unnamed.as_str(), "named1", anon.as_str()];
    want.sort();
    assert_eq!(names, want);
    assert!(df["Volumes"][0]["UsageData"]["Size"].is_i64(), "{df}");
    let verbose = ok(d.docker(&["system", "df", "-v"]));
    let vols = verbose
        .split("VOLUME NAME")
        .nth(1)
        .expect("volumes table")
        .split("\n\n")
        .next()
        .expect("table")
        .to_string();
    assert!(
        vols.contains("named1") && !vols.contains("tmp1"),
        "{verbose}"
    );
    // berth's own CLI prints the same table.
    let ours = ok(d.berth(&["system", "df", "-v"]));
    let our_vols = ours
        .split("VOLUME NAME")
        .nth(1)
        .expect("berth volumes table")
        .split("\n\n")
        .next()
        .expect("table");
    assert_eq!(our_vols, vols, "{ours}");
    let (code, err) = api(&d, "GET", "/v1.47/system/df?type=bogus", None);
    assert_eq!(code, 400);
    assert_eq!(err["message"], "unknown object type: bogus");
    let (code, df) = api(&d, "GET", "/v1.41/system/df?type=volume", None);
    assert_eq!(code, 200);
    assert!(
        df.get("Images").is_some() && df.get("Containers").is_some(),
        "{df}"
    );
    // Prune at API 1.42+: anonymous ones only; with all=true the named and unnamed too;
    // never the one with driver options.
    let (code, rep) = api(&d, "POST", "/v1.47/volumes/prune", None);
    assert_eq!(code, 200, "{rep}");
    assert_eq!(rep["VolumesDeleted"], serde_json::json!([anon]));
    let (code, rep) = api(
        &d,
        "POST",
        "/v1.47/volumes/prune?filters=%7B%22all%22%3A%5B%22maybe%22%5D%7D",
        None,
    );
    assert_eq!(code, 400, "{rep}");
    ok(d.docker(&["volume", "create", "named2"]));
    let (_, rep) = api(
        &d,
        "POST",
        "/v1.47/volumes/prune?filters=%7B%22all%22%3A%5B%22true%22%5D%7D",
        None,
    );
    let mut deleted: Vec<&str> = rep["VolumesDeleted"]
        .as_array()
        .expect("deleted")
        .iter()
        .map(|v| v.as_str().expect("name"))
        .collect();
    deleted.sort();
    let mut want = vec!["named1", "named2", unnamed.as_str()];
    want.sort();
    assert_eq!(deleted, want);
    // Before API 1.42 a plain prune removed named volumes too.
    ok(d.docker(&["volume", "create", "named3"]));
    let (_, rep) = api(&d, "POST", "/v1.41/volumes/prune", None);
    assert_eq!(rep["VolumesDeleted"], serde_json::json!(["named3"]));
    assert_eq!(volume_names(&d), ["tmp1"]);
    // A bind and a tmpfs on one path is refused; --mount type=volume shows mode "z".
    let out = d.docker(&[
        "create", "-v", "/tmp:/x", "--tmpfs", "/x", "busybox", "true",
    ]);
    assert!(
        text(&out).contains("Duplicate mount point: /x"),
        "{}",
        text(&out)
    );
    let c = unique("modez");
    ok(d.docker(&[
        "create",
        "--name",
        &c,
        "--mount",
        "type=volume,src=mz,dst=/mz",
        "busybox",
        "true",
    ]));
    let m = json(d.docker(&["inspect", "-f", "{{json .Mounts}}", &c]));
    assert_eq!(m[0]["Mode"], "z", "{m}");
    // Bad input over the API: 400 with dockerd's text (or, for an unknown Mounts field,
    // which dockerd ignores, one naming it).
    let create = |hc: &str| {
        api(
            &d,
            "POST",
            "/v1.47/containers/create",
            Some(&format!(
                r#"{{"Image":"busybox","Cmd":["true"],"HostConfig":{hc}}}"#
            )),
        )
    };
    for (hc, want) in [
        (
            r#"{"Binds":["foo/bar:/x"]}"#,
            "create foo/bar: \"foo/bar\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path",
        ),
        (
            r#"{"Binds":["/tmp:/proc/x"]}"#,
            "invalid volume specification: '/tmp:/proc/x': invalid mount config for type \"bind\": \"/proc/x\" cannot be mounted because it is located inside \"/proc\"",
        ),
        (
            r#"{"Mounts":[{"Type":"bind","Source":"/tmp","Target":"/x","Bogus":1}]}"#,
            "unknown field \"Bogus\" in Mount",
        ),
        (
            r#"{"Mounts":[{"Type":"tmpfs","Source":"x","Target":"/x"}]}"#,
            "invalid mount config for type \"tmpfs\": field Source must not be specified",
        ),
    ] {
        let (code, err) = create(hc);
        assert_eq!(code, 400, "{hc}: {err}");
        assert_eq!(err["message"], want, "{hc}");
    }
    let (code, err) = api(
        &d,
        "POST",
        "/v1.47/volumes/create",
        Some(r#"{"Name":"a b"}"#),
    );
    assert_eq!(code, 400, "{err}");
    assert!(err["message"]
        .as_str()
        .expect("message")
        .starts_with("create a b: \"a b\" includes invalid characters"));
}

/// Mount points of this process's namespace under `root` (berthd runs in it).
fn mounts_under(root: &std::path::Path) -> Vec<String> {
    let root = root.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| mp.starts_with(&root))
        .map(str::to_string)
        .collect()
}

#[test]
fn copy_up_from_a_built_image() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let ctx = d.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).expect("mkdir");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN mkdir -p /data/sub && echo seeded > /data/f && ln -s f /data/link \
         && chown -R 1000:1001 /data && chmod 750 /data && chmod 600 /data/f \
         && chown 0:0 /data/sub && chmod 1777 /data/sub\n\
         VOLUME /data\n",
    )
    .expect("Dockerfile");
    ok(d.docker(&["build", "-q", "-t", "chowned", ctx.to_str().expect("utf8")]));
    let stat = "cd /data && stat -c '%n %u:%g %a %F' . f link sub && cat f";
    let want = ". 1000:1001 750 directory\nf 1000:1001 600 regular file\n\
                link 1000:1001 777 symbolic link\nsub 0:0 1777 directory\nseeded\n";
    // The image's own VOLUME (anonymous), a named volume, and --mount: all copied up.
    assert_eq!(
        ok(d.docker(&["run", "--rm", "chowned", "sh", "-c", stat])),
        want
    );
    assert_eq!(
        ok(d.docker(&["run", "--rm", "-v", "cv:/data", "chowned", "sh", "-c", stat])),
        want
    );
    // Once there is content, a later container sees the volume's, not the image's.
    ok(d.docker(&["run", "--rm", "-v", "cv:/data", "chowned", "rm", "/data/f"]));
    let out = ok(d.docker(&["run", "--rm", "-v", "cv:/data", "chowned", "ls", "/data"]));
    assert_eq!(out, "link\nsub\n");
    let out = ok(d.docker(&[
        "run",
        "--rm",
        "-v",
        "cv2:/data:nocopy",
        "chowned",
        "ls",
        "-A",
        "/data",
    ]));
    assert_eq!(out, "");
}

#[test]
fn no_leaked_mounts_and_refs_survive_restart() {
    let mut d = Daemon::start();
    d.import_busybox("busybox");
    let data = d.dir.path().join("data");
    let exec = d.dir.path().join("exec");
    ok(d.docker(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=1m",
        "tv",
    ]));
    // The tmpfs volume's size is enforced.
    let out = d.docker(&[
        "run",
        "--rm",
        "-v",
        "tv:/t",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/t/big",
        "bs=1024",
        "count=2048",
    ]);
    assert!(
        text(&out).contains("No space left on device"),
        "{}",
        text(&out)
    );
    assert!(mounts_under(&data).is_empty(), "{:?}", mounts_under(&data));
    // A start that fails on a bad mount leaves nothing mounted behind.
    let hostfile = d.dir.path().join("file");
    std::fs::write(&hostfile, "x").expect("write");
    let out = d.docker(&[
        "run",
        "--rm",
        "-v",
        "tv:/t",
        "-v",
        &format!("{}:/etc/hostname/x", hostfile.display()),
        "busybox",
        "true",
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    let leaked: Vec<String> = mounts_under(&data)
        .into_iter()
        .chain(
            mounts_under(&exec)
                .into_iter()
                .filter(|m| m.ends_with("/rootfs")),
        )
        .collect();
    assert!(leaked.is_empty(), "after a failed start: {leaked:?}");
    // Running, berthd killed and restarted: the volume stays in use and mounted once.
    let c = unique("holder");
    ok(d.docker(&[
        "run",
        "-d",
        "--name",
        &c,
        "-v",
        "tv:/t",
        "busybox",
        "sh",
        "-c",
        "echo kept > /t/f; sleep 300",
    ]));
    std::thread::sleep(std::time::Duration::from_millis(300));
    d.crash();
    d.spawn();
    let v = json(d.docker(&["volume", "inspect", "tv"]));
    assert_eq!(v[0]["Options"]["type"], "tmpfs", "{v}");
    assert_eq!(ok(d.docker(&["exec", &c, "cat", "/t/f"])), "kept\n");
    let out = d.docker(&["volume", "rm", "tv"]);
    assert!(text(&out).contains("volume is in use"), "{}", text(&out));
    ok(d.docker(&["rm", "-f", &c]));
    assert!(mounts_under(&data).is_empty(), "{:?}", mounts_under(&data));
    ok(d.docker(&["volume", "rm", "tv"]));
    assert!(volume_names(&d).is_empty());
}

/// `docker inspect` of a container with every kind of mount, with the daemon's data root
/// and anonymous volume names replaced, so two daemons' answers can be compared.
fn mounts_view(out: Output, data_root: &std::path::Path) -> Value {
    let s = ok(out).replace(&data_root.to_string_lossy().to_string(), "<root>");
    let re_anon = |s: &str| -> String {
        // 64-hex volume names (anonymous) differ per daemon.
        let mut out = String::new();
        let mut run = String::new();
        for ch in s.chars() {
            if ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase() {
                run.push(ch);
                continue;
            }
            out.push_str(if run.len() == 64 { "<anon>" } else { &run });
            run.clear();
            out.push(ch);
        }
        out.push_str(if run.len() == 64 { "<anon>" } else { &run });
        out
    };
    let mut v: Value = serde_json::from_str(&re_anon(&s)).expect("inspect json");
    let c = &mut v[0];
    let mut mounts = c["Mounts"].as_array().cloned().unwrap_or_default();
    mounts.sort_by_key(|m| m["Destination"].as_str().unwrap_or("").to_string());
    // docker's CLI sends -v binds in Go map order, different from run to run.
    let mut binds = c["HostConfig"]["Binds"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    binds.sort_by_key(|b| b.as_str().unwrap_or("").to_string());
    serde_json::json!({
        "Mounts": mounts,
        "Binds": binds,
        "HostMounts": c["HostConfig"]["Mounts"],
        "Tmpfs": c["HostConfig"]["Tmpfs"],
        "Volumes": c["Config"]["Volumes"],
    })
}

#[test]
fn inspect_mounts_match_dockerd() {
    let Some(dd) = Dockerd::start() else {
        return;
    };
    let d = Daemon::start();
    d.import_busybox("busybox");
    dd.import_busybox("busybox");
    let host = d.dir.path().join("shared-src");
    std::fs::create_dir_all(&host).expect("mkdir");
    let h = host.to_str().expect("utf8");
    let args = [
        "create".to_string(),
        "--network".into(),
        "none".into(),
        "-v".into(),
        "nv:/n".into(),
        "-v".into(),
        "/an".into(),
        "-v".into(),
        format!("{h}:/b:ro,rslave"),
        "-v".into(),
        "nv2:/n2:ro,nocopy".into(),
        "--mount".into(),
        format!("type=bind,src={h},dst=/mb,bind-propagation=rshared"),
        "--mount".into(),
        "type=volume,src=mv,dst=/mv,volume-nocopy,readonly".into(),
        "--mount".into(),
        "type=volume,dst=/manon".into(),
        "--mount".into(),
        "type=tmpfs,dst=/mt,tmpfs-size=1m,tmpfs-mode=0700".into(),
        "--tmpfs".into(),
        "/t:size=1m,mode=1770".into(),
        "busybox".into(),
        "true".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ours = ok(d.docker(&args)).trim().to_string();
    let theirs = ok(dd.docker(&args)).trim().to_string();
    let ours = mounts_view(d.docker(&["inspect", &ours]), &d.dir.path().join("data"));
    let theirs = mounts_view(
        dd.docker(&["inspect", &theirs]),
        &dd.dir.path().join("data"),
    );
    assert_eq!(
        ours,
        theirs,
        "berth:\n{}\ndockerd:\n{}",
        serde_json::to_string_pretty(&ours).expect("json"),
        serde_json::to_string_pretty(&theirs).expect("json")
    );
}
