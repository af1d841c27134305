//! The container image `scripts/build-image` writes, checked without a container engine: the OCI
//! layout's blobs match their digests; the config runs the binary as a non-root user with `run`,
//! carries the OCI labels and no secret; the layer holds exactly the listed files, root-owned with
//! fixed times; the same inputs give the same digests; and the binary taken out of the layer
//! answers `version` and, run against the test control plane and the simulators, serves
//! `/healthz` and takes an EmailChannel to Ready.
//!
//! Which image: with `CEO_IMAGE=<OCI layout directory>` the one `scripts/build-image` wrote (the
//! release image, a static musl binary; the release workflow runs this before pushing, locally:
//! `scripts/build-image && CEO_IMAGE=target/image/oci cargo test --test image`). Without it, as in
//! `scripts/test`, the test builds the image with `scripts/build-image --binary` from the debug
//! binary cargo built for the tests, so the suite pays no release build (minutes on a 2-core
//! machine). That binary is linked against glibc, which the image does not have: only the
//! `CEO_IMAGE` run checks that the binary is static and free of build-machine paths.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use support::channel;
use support::operator::Harness;
use support::process::OperatorProcess;
use support::*;

const BINARY: &str = "usr/local/bin/connect-email-operator";
const NONROOT: u64 = 65532;

/// One entry of the image's layer.
struct Entry {
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    data: Vec<u8>,
}

/// An image read from an OCI layout, every blob checked against its digest and size.
struct Image {
    layout: PathBuf,
    manifest_digest: String,
    index: Value,
    manifest: Value,
    config: Value,
    /// The layer, uncompressed.
    layer_tar: Vec<u8>,
    entries: BTreeMap<String, Entry>,
    /// Built here from the test's debug binary (else given by CEO_IMAGE).
    built_here: bool,
}

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A blob named by `descriptor`, checked against its digest and size.
fn blob(layout: &Path, descriptor: &Value) -> Vec<u8> {
    let digest = descriptor["digest"].as_str().expect("descriptor digest");
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let data = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap_or_else(|e| panic!("blob {digest}: {e}"));
    assert_eq!(sha256_hex(&data), hex, "blob {digest} does not match its digest");
    assert_eq!(Some(data.len() as u64), descriptor["size"].as_u64(), "blob {digest} size");
    data
}

fn json(data: &[u8]) -> Value {
    serde_json::from_slice(data).expect("JSON blob")
}

impl Image {
    fn read(layout: &Path, built_here: bool) -> Image {
        let oci_layout = json(&std::fs::read(layout.join("oci-layout")).expect("oci-layout file"));
        assert_eq!(oci_layout["imageLayoutVersion"], "1.0.0");
        let index = json(&std::fs::read(layout.join("index.json")).expect("index.json"));
        assert_eq!(index["schemaVersion"], 2);
        let manifests = index["manifests"].as_array().expect("index manifests");
        assert_eq!(manifests.len(), 1, "one image in the layout: {index}");
        let descriptor = &manifests[0];
        assert_eq!(descriptor["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        let manifest = json(&blob(layout, descriptor));
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
        let config = json(&blob(layout, &manifest["config"]));
        let layers = manifest["layers"].as_array().expect("manifest layers");
        assert_eq!(layers.len(), 1, "one layer: {manifest}");
        assert_eq!(layers[0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
        let mut layer_tar = Vec::new();
        flate2::read::GzDecoder::new(&blob(layout, &layers[0])[..]).read_to_end(&mut layer_tar).expect("gzip layer");
        // The config names the uncompressed layer by its digest (what a runtime verifies).
        assert_eq!(config["rootfs"]["type"], "layers");
        assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!([format!("sha256:{}", sha256_hex(&layer_tar))]));
        let mut entries = BTreeMap::new();
        let mut archive = tar::Archive::new(&layer_tar[..]);
        for entry in archive.entries().expect("layer tar") {
            let mut entry = entry.expect("layer entry");
            let header = entry.header().clone();
            let path = entry.path().unwrap().to_string_lossy().trim_end_matches('/').to_string();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            let previous = entries.insert(
                path.clone(),
                Entry {
                    kind: header.entry_type(),
                    mode: header.mode().unwrap(),
                    uid: header.uid().unwrap(),
                    gid: header.gid().unwrap(),
                    mtime: header.mtime().unwrap(),
                    data,
                },
            );
            assert!(previous.is_none(), "{path} twice in the layer");
        }
        Image {
            layout: layout.to_path_buf(),
            manifest_digest: descriptor["digest"].as_str().unwrap().to_string(),
            index,
            manifest,
            config,
            layer_tar,
            entries,
            built_here,
        }
    }

    fn file(&self, path: &str) -> &Entry {
        self.entries.get(path).unwrap_or_else(|| panic!("{path} not in the image"))
    }

    fn text(&self, path: &str) -> String {
        String::from_utf8(self.file(path).data.clone()).unwrap_or_else(|_| panic!("{path} is not text"))
    }

    /// The archive next to the layout directory (scripts/build-image's output layout).
    fn archive(&self) -> PathBuf {
        self.layout.parent().unwrap().join(format!("connect-email-operator-{}.oci.tar", env!("CARGO_PKG_VERSION")))
    }
}

/// Runs scripts/build-image with `binary` into `out`; returns the layout directory.
fn build(binary: &Path, out: &Path) -> PathBuf {
    let output = Command::new(repo_root().join("scripts/build-image"))
        .arg("--binary")
        .arg(binary)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run scripts/build-image");
    assert!(
        output.status.success(),
        "scripts/build-image failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    out.join("oci")
}

fn work_dir() -> PathBuf {
    repo_root().join("target/tmp/image-test")
}

/// The image under test, read once per test binary.
fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| match std::env::var_os("CEO_IMAGE") {
        Some(layout) => Image::read(&repo_root().join(layout), false),
        None => {
            let binary = PathBuf::from(env!("CARGO_BIN_EXE_connect-email-operator"));
            Image::read(&build(&binary, &work_dir().join("first")), true)
        }
    })
}

/// The binary taken out of the image's layer, into `dir`.
fn extract_binary(image: &Image, dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("connect-email-operator");
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, &image.file(BINARY).data).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(image.file(BINARY).mode)).unwrap();
    path
}

/// Whether an ELF executable asks for a program interpreter (is dynamically linked).
fn has_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF file");
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3 // PT_INTERP
    })
}

#[test]
fn the_config_runs_the_binary_as_nonroot_with_run_labels_and_no_secret() {
    let image = image();
    let index_descriptor = &image.index["manifests"][0];
    assert_eq!(index_descriptor["platform"], serde_json::json!({"architecture": "amd64", "os": "linux"}));
    assert_eq!(index_descriptor["annotations"]["org.opencontainers.image.ref.name"], env!("CARGO_PKG_VERSION"));

    let config = &image.config;
    assert_eq!((config["os"].as_str(), config["architecture"].as_str()), (Some("linux"), Some("amd64")));
    let c = &config["config"];
    // The user as uid:gid, not a name: Kubernetes' runAsNonRoot can only verify a numeric user.
    assert_eq!(c["User"], format!("{NONROOT}:{NONROOT}"));
    assert_eq!(c["Entrypoint"], serde_json::json!([format!("/{BINARY}")]));
    assert_eq!(c["Cmd"], serde_json::json!(["run"]));

    let labels = c["Labels"].as_object().expect("labels");
    let label = |key: &str| labels.get(&format!("org.opencontainers.image.{key}")).and_then(Value::as_str);
    assert!(label("source").is_some_and(|s| s.starts_with("https://github.com/")), "source label: {labels:?}");
    assert_eq!(label("version"), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(label("licenses"), Some(env!("CARGO_PKG_LICENSE")));
    let revision = label("revision").expect("revision label");
    let commit = revision.trim_end_matches("-dirty");
    assert!(commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()), "revision {revision}");
    assert_eq!(label("created"), config["created"].as_str());
    // Registries show manifest annotations: the same labels.
    assert_eq!(image.manifest["annotations"].as_object(), Some(labels));

    // No secret in the config: no credential variable, nothing that looks like a key or token.
    let text = serde_json::to_string(config).unwrap();
    for variable in c["Env"].as_array().expect("Env") {
        let name = variable.as_str().unwrap().split('=').next().unwrap().to_uppercase();
        assert!(
            !["SECRET", "TOKEN", "PASSWORD", "KEY", "CREDENTIAL", "AZURE_"].iter().any(|w| name.contains(w)),
            "credential-like variable {name} in the image config"
        );
    }
    let secret_like = regex::Regex::new(r"(?i)-----BEGIN|password|secret|bearer|eyJ[A-Za-z0-9_-]{10,}").unwrap();
    assert!(!secret_like.is_match(&text), "secret-like text in the image config: {text}");
}

#[test]
fn the_layer_holds_exactly_the_listed_files_root_owned_with_fixed_times() {
    let image = image();
    let expected = [
        "etc",
        "etc/group",
        "etc/passwd",
        "etc/ssl",
        "etc/ssl/certs",
        "etc/ssl/certs/ca-certificates.crt",
        "home",
        "home/nonroot",
        "tmp",
        "usr",
        "usr/local",
        "usr/local/bin",
        BINARY,
        "usr/share",
        "usr/share/doc",
        "usr/share/doc/ca-certificates",
        "usr/share/doc/ca-certificates/copyright",
        "usr/share/doc/connect-email-operator",
        "usr/share/doc/connect-email-operator/crates.txt",
        "usr/share/doc/musl",
        "usr/share/doc/musl/copyright",
        "var",
        "var/lib",
        "var/lib/dpkg",
        "var/lib/dpkg/status.d",
        "var/lib/dpkg/status.d/ca-certificates",
    ];
    assert_eq!(image.entries.keys().map(String::as_str).collect::<Vec<_>>(), expected, "the layer's files");

    // No private key material anywhere (the binary names PEM labels, so look for key bytes).
    let key = regex::bytes::Regex::new(r"-----BEGIN [A-Z ]*PRIVATE KEY-----\s*[A-Za-z0-9+/]{40}").unwrap();
    let created: jiff::Timestamp = image.config["created"].as_str().unwrap().parse().unwrap();
    for (path, entry) in &image.entries {
        assert_eq!(entry.mtime as i64, created.as_second(), "{path}: modification time");
        let owner = if path == "home/nonroot" { NONROOT } else { 0 };
        assert_eq!((entry.uid, entry.gid), (owner, owner), "{path}: owner");
        assert_eq!(entry.mode & 0o6000, 0, "{path}: setuid/setgid");
        let expected_mode = match path.as_str() {
            "tmp" => 0o1777,
            "home/nonroot" => 0o700,
            BINARY => 0o755,
            _ if entry.kind.is_dir() => 0o755,
            _ => 0o644,
        };
        assert_eq!(entry.mode, expected_mode, "{path}: mode {:o}", entry.mode);
        assert!(entry.kind.is_dir() || entry.kind.is_file(), "{path}: {:?}", entry.kind);
        assert!(!key.is_match(&entry.data), "{path} holds a private key");
    }

    // The image's user exists, with the uid:gid the config runs as.
    let passwd = image.text("etc/passwd");
    assert!(passwd.lines().any(|l| l.starts_with(&format!("nonroot:x:{NONROOT}:{NONROOT}:"))), "{passwd}");
    assert!(image.text("etc/group").lines().any(|l| l == format!("nonroot:x:{NONROOT}:")));
    // A CA bundle (the platform verifier of the Kubernetes client reads it) and the notices.
    let bundle = image.text("etc/ssl/certs/ca-certificates.crt");
    assert!(bundle.matches("-----BEGIN CERTIFICATE-----").count() > 100, "too few CA certificates");
    assert_eq!(
        bundle.matches("-----BEGIN CERTIFICATE-----").count(),
        bundle.matches("-----END CERTIFICATE-----").count()
    );
    assert!(image.text("usr/share/doc/ca-certificates/copyright").contains("Mozilla"));
    assert!(image.text("usr/share/doc/musl/copyright").contains("musl"));
    assert!(image.text("var/lib/dpkg/status.d/ca-certificates").starts_with("Package: ca-certificates\n"));
    let crates = image.text("usr/share/doc/connect-email-operator/crates.txt");
    assert!(crates.contains(&format!("connect-email-operator v{} Apache-2.0\n", env!("CARGO_PKG_VERSION"))));
    assert!(crates.lines().any(|l| l.starts_with("kube v")), "kube not in the crate list");

    let binary = &image.file(BINARY).data;
    if image.built_here {
        let built = std::fs::read(env!("CARGO_BIN_EXE_connect-email-operator")).unwrap();
        assert!(*binary == built, "the image's binary is not the one it was built from");
        // As the module says: the test suite's binary is dynamic (and the check below sees it).
        assert!(has_interpreter(binary), "the debug binary has no program interpreter");
    } else {
        // The release binary: static (the image has no C library) and free of this machine's paths.
        assert!(!has_interpreter(binary), "the image's binary is dynamically linked");
        let mut paths = vec![repo_root().to_string_lossy().into_owned()];
        paths.extend(std::env::var("CARGO_HOME").ok());
        paths.extend(std::env::var("HOME").ok().filter(|h| h.len() > 1).map(|h| format!("{h}/.cargo")));
        for path in paths {
            assert!(
                !binary.windows(path.len()).any(|w| w == path.as_bytes()),
                "the binary holds the build path {path}"
            );
        }
    }
}

#[test]
fn the_archive_is_the_layout_with_a_docker_load_manifest() {
    let image = image();
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(image.archive()).expect("the archive"));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        files.insert(path, data);
    }
    for name in ["oci-layout", "index.json"] {
        assert_eq!(files.get(name), Some(&std::fs::read(image.layout.join(name)).unwrap()), "{name}");
    }
    let manifest_hex = image.manifest_digest.trim_start_matches("sha256:");
    let config_hex = image.manifest["config"]["digest"].as_str().unwrap().trim_start_matches("sha256:");
    let layer_hex = image.manifest["layers"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:");
    for hex in [manifest_hex, config_hex, layer_hex] {
        let data = files.get(&format!("blobs/sha256/{hex}")).unwrap_or_else(|| panic!("blob {hex} not archived"));
        assert_eq!(sha256_hex(data), hex);
    }
    let docker: Value = serde_json::from_slice(files.get("manifest.json").expect("manifest.json")).unwrap();
    assert_eq!(docker[0]["Config"], format!("blobs/sha256/{config_hex}"));
    assert_eq!(docker[0]["Layers"], serde_json::json!([format!("blobs/sha256/{layer_hex}")]));
    let tag = docker[0]["RepoTags"][0].as_str().unwrap();
    assert!(tag.ends_with(&format!("/connect-email-operator:{}", env!("CARGO_PKG_VERSION"))), "{tag}");
}

/// Reproducible: the image's own binary, the same commit and packages give the same digests.
#[test]
fn the_same_inputs_give_the_same_image() {
    let image = image();
    let binary = extract_binary(image, &work_dir().join("again-bin"));
    let again = Image::read(&build(&binary, &work_dir().join("again")), true);
    assert_eq!(again.manifest_digest, image.manifest_digest, "a rebuild from the same inputs differs");
    assert!(again.layer_tar == image.layer_tar);
    assert!(std::fs::read(again.archive()).unwrap() == std::fs::read(image.archive()).unwrap(), "archives differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_from_the_image_serves_healthz_and_takes_a_channel_to_ready() {
    let image = tokio::task::spawn_blocking(image).await.unwrap();
    let binary = extract_binary(image, &work_dir().join("run-bin"));

    let version = Command::new(&binary).arg("version").output().expect("run the image's binary");
    let stdout = String::from_utf8_lossy(&version.stdout);
    assert!(version.status.success(), "version failed: {}", String::from_utf8_lossy(&version.stderr));
    assert!(stdout.starts_with(&format!("connect-email-operator {}\n", env!("CARGO_PKG_VERSION"))), "{stdout}");

    let h = Harness::without_operator("image").await;
    channel::prepare(&h).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics = format!("127.0.0.1:{port}");
    let mut op = OperatorProcess::spawn_binary_for_channels(
        &binary,
        &h.ns.name,
        &h.sim,
        &h.connect,
        "image",
        &["--metrics-addr", &metrics],
    );
    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let (http, url) = (http.clone(), format!("http://{metrics}{path}"));
        async move {
            let response = http.get(&url).send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response.text().await.map_err(|e| e.to_string())?;
            if status == 200 { Ok(body) } else { Err(format!("{url}: {status} {body}")) }
        }
    };
    assert_eq!(eventually(Duration::from_secs(30), || get("/healthz")).await, "ok", "logs:\n{}", op.logs());

    let since = channel::mark(&h);
    channel::apply(&h).await;
    let done = channel::converged(&h, None, Duration::from_secs(120)).await;
    let invariants = channel::Invariants::check(&h, done, false, since, &op.logs()).await;
    assert!(invariants.ok(), "{:?}\nlogs:\n{}", invariants.problems, op.logs());
    assert_eq!(eventually(Duration::from_secs(10), || get("/readyz")).await, "ok");

    // Finalizers run while the operator still runs; then it is stopped.
    h.finish().await;
    op.kill();
}

/// A process killed when dropped (also when the test fails).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(name: &str) -> PathBuf {
    repo_root().join("target/tools/bin").join(name)
}

/// Runs a command; its stdout, or a panic with both outputs.
fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// What the release workflow does after logging in to ghcr.io, against a local registry
/// (go-containerregistry's, `crane registry serve`): the image arrives with the digest it was built
/// with and validates, and the chart names it as its default image.
#[test]
fn publish_pushes_the_image_as_built_and_a_chart_naming_it() {
    let image = image();
    run(&mut Command::new(repo_root().join("tests/tools/install-crane")));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let registry = format!("127.0.0.1:{port}");
    let _registry = Child(
        Command::new(tool("crane"))
            .args(["registry", "serve", "--address", &registry])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("crane registry serve"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&registry).is_err() {
        assert!(std::time::Instant::now() < deadline, "the test registry did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    let prefix = format!("{registry}/acme");
    let out = run(Command::new(repo_root().join("scripts/publish"))
        .arg(&prefix)
        .arg(image.layout.parent().unwrap())
        .env("PLAIN_HTTP", "1"));
    let version = env!("CARGO_PKG_VERSION");
    let repository = format!("{prefix}/connect-email-operator");
    assert_eq!(out.trim(), format!("{repository}@{}", image.manifest_digest));

    let crane = |args: &[&str]| run(Command::new(tool("crane")).args(args).arg("--insecure"));
    let reference = format!("{repository}:{version}");
    assert_eq!(crane(&["digest", &reference]).trim(), image.manifest_digest);
    let validated = crane(&["validate", "--remote", &reference]);
    assert!(validated.starts_with("PASS"), "{validated}");
    let config: Value = serde_json::from_str(&crane(&["config", &reference])).unwrap();
    assert_eq!(config, image.config);

    let chart = format!("oci://{prefix}/charts/connect-email-operator");
    let helm =
        |what: &str| run(Command::new(tool("helm")).args(["show", what, &chart, "--version", version, "--plain-http"]));
    let values: serde_yaml::Value = serde_yaml::from_str(&helm("values")).unwrap();
    assert_eq!(values["image"]["repository"].as_str(), Some(repository.as_str()));
    assert_eq!(values["image"]["tag"].as_str(), Some(""), "the tag stays the chart's appVersion");
    let chart_yaml: serde_yaml::Value = serde_yaml::from_str(&helm("chart")).unwrap();
    assert_eq!(chart_yaml["appVersion"].as_str(), Some(version));
}
