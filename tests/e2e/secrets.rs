//! Secrets sealed at rest, end to end: the real kubectl writes, reads and
//! watches a Secret through a real `skiff server` and sees it whole, while the
//! store file on disk holds neither its value nor its base64; the key rotates
//! with the server stopped, and a lost or broken key file stops the server
//! instead of letting it fall back to plaintext.

use skiff_testkit::cluster;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cluster::{Kubectl, Server};

/// A value no other test writes, so finding it on disk can only mean a leak.
const PASSWORD: &str = "skiff-e2e-correct-horse-battery-4417";
const CONFIG: &str = "encryption-config.yaml";
const STORE: &str = "store.redb";

fn store_contains(data_dir: &Path, needle: &str) -> bool {
    let bytes = std::fs::read(data_dir.join(STORE)).expect("read the store file");
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn password_of(k: &Kubectl) -> String {
    let encoded = k.ok(&["get", "secret", "db", "-o", "jsonpath={.data.password}"]);
    let decoded = BASE64
        .decode(encoded.trim())
        .unwrap_or_else(|e| panic!("{encoded:?} is not base64: {e}"));
    String::from_utf8(decoded).expect("utf-8 password")
}

fn skiff(args: &[&str], data_dir: &Path) -> cluster::Outcome {
    let mut cmd = Command::new(cluster::skiff());
    cmd.args(args).arg("--data-dir").arg(data_dir);
    cluster::run(cmd, &format!("skiff {}", args.join(" ")))
}

/// `skiff server` that must refuse to start: its error output.
fn refused_start(data_dir: &Path) -> String {
    let out = skiff(
        &[
            "server",
            "--api-addr",
            "127.0.0.1:0",
            "--quic-addr",
            "127.0.0.1:0",
        ],
        data_dir,
    );
    assert!(
        !out.status.success() && !out.stdout.contains("Skiff API on"),
        "the server started ({}):\n{}\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out.stderr
}

#[test]
fn a_secret_is_whole_through_kubectl_and_sealed_on_disk_across_a_key_rotation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let mut server = Server::start(&data_dir);
    let k = Kubectl::new(&server.kubeconfig());
    let base64_password = BASE64.encode(PASSWORD);

    let mut watch = k.spawn(&[
        "get",
        "secrets",
        "-w",
        "-o",
        r#"jsonpath={.metadata.name}={.data.password}{"\n"}"#,
    ]);
    assert_eq!(
        k.ok(&[
            "create",
            "secret",
            "generic",
            "db",
            &format!("--from-literal=password={PASSWORD}"),
        ])
        .trim(),
        "secret/db created"
    );
    assert_eq!(password_of(&k), PASSWORD);
    let seen = watch.wait_for_line("db with its password", |l| l.starts_with("db="));
    assert_eq!(
        seen,
        format!("db={base64_password}"),
        "the watch sees plaintext"
    );
    drop(watch);

    // The store file has the Secret only sealed, under the first key.
    assert!(store_contains(&data_dir, "k8s:enc:aesgcm:v1:key1:"));
    for needle in [PASSWORD, &base64_password] {
        assert!(!store_contains(&data_dir, needle), "{needle} is in {STORE}");
    }
    let config = std::fs::read_to_string(data_dir.join(CONFIG)).expect("read the key file");
    assert!(config.contains("kind: EncryptionConfiguration") && config.contains("name: key1"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data_dir.join(CONFIG))
            .expect("stat the key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is its owner's only");
    }

    // Rotation needs the store, which the running server holds.
    let out = skiff(&["secrets", "rotate-key"], &data_dir);
    assert!(!out.status.success(), "rotated under a running server");
    assert!(out.stderr.contains("stop the server"), "{}", out.stderr);

    server.kill();
    let out = skiff(&["secrets", "rotate-key"], &data_dir);
    assert!(out.status.success(), "rotate-key failed:\n{}", out.stderr);
    assert!(
        out.stdout.contains("sealed with key \"key2\"") && out.stdout.contains("removed key key1"),
        "{}",
        out.stdout
    );
    let config = std::fs::read_to_string(data_dir.join(CONFIG)).expect("read the key file");
    assert!(
        config.contains("name: key2") && !config.contains("name: key1"),
        "{config}"
    );
    assert!(
        !store_contains(&data_dir, "k8s:enc:aesgcm:v1:key1:"),
        "a Secret record is still sealed with the old key"
    );
    assert!(store_contains(&data_dir, "k8s:enc:aesgcm:v1:key2:"));
    for needle in [PASSWORD, &base64_password] {
        assert!(!store_contains(&data_dir, needle), "{needle} is in {STORE}");
    }

    let mut server = Server::start(&data_dir);
    let k = Kubectl::new(&server.kubeconfig());
    assert_eq!(
        password_of(&k),
        PASSWORD,
        "the Secret reads back after the rotation"
    );

    // A broken key file, then a lost one: the server refuses to start, naming it.
    server.kill();
    let config_path = data_dir.join(CONFIG);
    std::fs::write(&config_path, "kind: EncryptionConfiguration\nresources: {").expect("break");
    let stderr = refused_start(&data_dir);
    assert!(
        stderr.contains(CONFIG) && stderr.contains("not a valid"),
        "{stderr}"
    );
    std::fs::remove_file(&config_path).expect("remove the key file");
    let stderr = refused_start(&data_dir);
    assert!(
        stderr.contains(CONFIG) && stderr.contains("is missing") && stderr.contains("\"key2\""),
        "{stderr}"
    );
    assert!(
        !config_path.exists(),
        "no new key was made in place of the lost one"
    );
}
