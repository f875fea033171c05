//! `tessera identity-config get|update` against a running `tessera serve --config FILE`: the
//! seeds' "download the config, add a provider, upload it" workflow, without a restart; bad
//! uploads refused with the start-up errors and nothing changed; the file on disk stays the
//! source of truth.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tessera_testkit::Browser;
use tessera_testkit::emulators::github::GithubEmulator;
use tessera_testkit::journey::location;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const COOKIE_SECRET: &str = "a-cookie-secret-of-some-length-0001";
const CIPHER_SECRET: &str = "a-cipher-secret-of-some-length-0002";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Server {
    child: Child,
    public: String,
    admin: String,
    config: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base_config(dir: &Path, public: u16, admin: u16) -> String {
    format!(
        "# Hand-written; comments survive an update that needs no secret restored.\ndsn: sqlite://{}?mode=rwc\nserve:\n  public:\n    port: {public}\n    base_url: http://127.0.0.1:{public}/\n  admin:\n    port: {admin}\nsecrets:\n  cookie: [{COOKIE_SECRET}]\n  cipher: [{CIPHER_SECRET}]\nselfservice:\n  default_browser_return_url: http://127.0.0.1:{public}/ui/welcome\n  methods:\n    password:\n      enabled: true\n  flows:\n    registration:\n      after:\n        oidc:\n          hooks:\n            - hook: session\nhashers:\n  argon2:\n    memory: 1MB\n",
        dir.join("tessera.db").display()
    )
}

async fn start(dir: &Path, files: &[PathBuf], ports: (u16, u16)) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--dev"]);
    for f in files {
        cmd.arg("--config").arg(f);
    }
    let child = cmd
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tessera serve");
    let s = Server {
        child,
        public: format!("http://127.0.0.1:{}", ports.0),
        admin: format!("http://127.0.0.1:{}", ports.1),
        config: files[0].clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(format!("{}/health/ready", s.public)).await
            && r.status() == 200
        {
            return s;
        }
        assert!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn cli(admin: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("identity-config")
        .args(args)
        .args(["--endpoint", admin])
        .output()
        .expect("run tessera identity-config")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The providers a fresh login flow offers.
async fn offered_providers(s: &Server) -> Vec<String> {
    let flow: Value = reqwest::Client::new()
        .get(format!("{}/self-service/login/api", s.public))
        .send()
        .await
        .expect("login flow")
        .json()
        .await
        .expect("flow json");
    flow["ui"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["group"] == "oidc")
        .filter_map(|n| n["attributes"]["value"].as_str().map(String::from))
        .collect()
}

fn github_provider(gh: &GithubEmulator, secret: &str) -> Value {
    json!({
        "id": "github",
        "provider": "github",
        "label": "GitHub",
        "client_id": gh.client_id(),
        "client_secret": secret,
        "scope": ["user:email"],
        "auth_url": gh.auth_url(),
        "token_url": gh.token_url(),
        "api_base_url": gh.base_url(),
        "mapper_url": "base64://bG9jYWwgYyA9IHN0ZC5leHRWYXIoJ2NsYWltcycpOyB7IGlkZW50aXR5OiB7IHRyYWl0czogeyBlbWFpbDogYy5lbWFpbCB9IH0gfQ==",
    })
}

#[tokio::test]
async fn download_add_a_provider_upload_and_sign_in_without_a_restart() {
    let dir = tessera_testkit::temp_dir();
    let ports = (free_port(), free_port());
    let file = dir.join("tessera.yml");
    std::fs::write(&file, base_config(&dir, ports.0, ports.1)).expect("write config");
    let s = start(&dir, std::slice::from_ref(&file), ports).await;
    assert!(offered_providers(&s).await.is_empty());

    // Download: YAML by default, every secret replaced by a placeholder.
    let out = cli(&s.admin, &["get"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(
        !yaml.contains(COOKIE_SECRET) && !yaml.contains(CIPHER_SECRET),
        "{yaml}"
    );
    assert!(yaml.contains("<redacted:"), "{yaml}");
    let out = cli(&s.admin, &["get", "--format", "json"]);
    let mut doc: Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(doc["serve"]["public"]["port"], ports.0);

    // Add GitHub and upload the edited download (placeholders included).
    let gh = GithubEmulator::start().await;
    gh.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/github",
        s.public
    ));
    doc["selfservice"]["methods"]["oidc"] = json!({
        "enabled": true,
        "config": { "providers": [github_provider(&gh, gh.client_secret())] }
    });
    let upload = dir.join("edited.json");
    std::fs::write(&upload, serde_json::to_string_pretty(&doc).expect("json")).expect("write");
    let out = cli(
        &s.admin,
        &["update", "--file", upload.to_str().expect("utf-8")],
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("in force"),
        "{}",
        text(&out.stdout)
    );

    // In force at once: the button is there and a GitHub sign-in registers someone.
    assert_eq!(offered_providers(&s).await, ["github"]);
    let b = Browser::default();
    let r = b
        .get(
            &format!("{}/self-service/registration/browser", s.public),
            false,
        )
        .await;
    let flow_id = location(&r)
        .split("flow=")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let flow: Value = b
        .get(
            &format!("{}/self-service/registration/flows?id={flow_id}", s.public),
            true,
        )
        .await
        .json()
        .await
        .expect("flow");
    let r = b
        .post_form(
            flow["ui"]["action"].as_str().unwrap_or_default(),
            &[
                ("csrf_token", &tessera_testkit::csrf_of(&flow)),
                ("provider", "github"),
            ],
            false,
        )
        .await;
    let r = b
        .get(&format!("{}&user=octocat", location(&r)), false)
        .await;
    let r = b.get(&location(&r), false).await;
    assert_eq!(r.status(), 303, "callback: {:?}", r.text().await);
    let who: Value = b
        .get(&format!("{}/sessions/whoami", s.public), true)
        .await
        .json()
        .await
        .expect("whoami");
    assert_eq!(who["active"], true, "{who}");

    // The file holds the real secrets again (restored from their placeholders) and the
    // provider; a restart loads exactly that.
    let written = std::fs::read_to_string(&file).expect("config file");
    assert!(
        written.contains(COOKIE_SECRET) && written.contains(CIPHER_SECRET),
        "{written}"
    );
    assert!(!written.contains("<redacted:"), "{written}");
    assert!(written.contains(gh.client_secret()), "{written}");
    drop(s);
    let s = start(&dir, std::slice::from_ref(&file), ports).await;
    assert_eq!(offered_providers(&s).await, ["github"]);
    let who: Value = b
        .get(&format!("{}/sessions/whoami", s.public), true)
        .await
        .json()
        .await
        .expect("whoami");
    assert_eq!(who["active"], true, "the cookie secret survived: {who}");
}

#[tokio::test]
async fn bad_uploads_are_refused_like_at_start_and_change_nothing() {
    let dir = tessera_testkit::temp_dir();
    let ports = (free_port(), free_port());
    let file = dir.join("tessera.yml");
    let original = base_config(&dir, ports.0, ports.1);
    std::fs::write(&file, &original).expect("write config");
    let s = start(&dir, std::slice::from_ref(&file), ports).await;
    let gh = GithubEmulator::start().await;

    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "unknown key, with its line",
            original.replace("  methods:\n", "  methodz: {}\n  methods:\n"),
            vec!["selfservice.methodz", "tessera.yml:14"],
        ),
        (
            "a mapper that does not compile",
            format!(
                "{original}\n",
            )
            .replace(
                "    password:\n      enabled: true\n",
                &format!(
                    "    password:\n      enabled: true\n    oidc:\n      enabled: true\n      config:\n        providers:\n          - id: github\n            provider: github\n            client_id: x\n            client_secret: y\n            api_base_url: {}\n            mapper_url: base64://e30gKw==\n",
                    gh.base_url()
                ),
            ),
            vec!["github", "mapper"],
        ),
        (
            "a placeholder for a secret the server does not have",
            original.replace(COOKIE_SECRET, "\"<redacted:00000000>\""),
            vec!["secrets.cookie.0", "<redacted:00000000>"],
        ),
        (
            "a secret that is too short",
            original.replace(COOKIE_SECRET, "short"),
            vec!["secrets.cookie", "tessera.yml:10"],
        ),
        ("not YAML at all", "serve: [unclosed\n".to_string(), vec![":"]),
    ];
    for (what, body, expected) in cases {
        let upload = dir.join("upload.yml");
        std::fs::write(&upload, &body).expect("write upload");
        let out = cli(&s.admin, &["update", "-f", upload.to_str().expect("utf-8")]);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{what}: accepted");
        for e in &expected {
            assert!(err.contains(e), "{what}: `{e}` missing from:\n{err}");
        }
        assert!(
            err.contains("nothing was changed") || err.contains("HTTP 400"),
            "{what}: {err}"
        );
        assert_eq!(
            std::fs::read_to_string(&file).expect("config"),
            original,
            "{what}: the file changed"
        );
        assert!(offered_providers(&s).await.is_empty(), "{what}: applied");
    }

    // The admin API answers each problem as data too.
    let r = reqwest::Client::new()
        .put(format!("{}/admin/identity-config", s.admin))
        .header("content-type", "application/yaml")
        .body(original.replace("  methods:\n", "  methodz: {}\n  methods:\n"))
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.expect("json");
    assert_eq!(
        body["error"]["details"]["problems"][0]["key"], "selfservice.methodz",
        "{body}"
    );
}

/// Security review M5: an uploaded configuration cannot read the server's files outside its
/// folder, reach loopback or private addresses, use plain http, or learn what a file
/// contains from an error (the review read `secrets.default` this way).
#[tokio::test]
async fn uploads_cannot_read_files_probe_the_network_or_echo_content() {
    let dir = tessera_testkit::temp_dir();
    let ports = (free_port(), free_port());
    let file = dir.join("tessera.yml");
    let original = base_config(&dir, ports.0, ports.1);
    std::fs::write(&file, &original).expect("write config");
    // A secret the server keeps beside its configuration: Jsonnet would echo it as an
    // undefined variable.
    let secret = "rC6t8weq6srTg4A4m7uCzqlJD8h1CFBFG4zlgjHhluA";
    std::fs::write(dir.join("tessera.secret"), secret).expect("write secret");
    let s = start(&dir, std::slice::from_ref(&file), ports).await;
    let provider = |mapper_url: &str| {
        original.replace(
            "    password:\n      enabled: true\n",
            &format!(
                "    password:\n      enabled: true\n    oidc:\n      enabled: true\n      config:\n        providers:\n          - id: github\n            provider: github\n            client_id: x\n            client_secret: y\n            mapper_url: {mapper_url}\n"
            ),
        )
    };
    let schema = |url: &str| {
        format!(
            "{original}identity:\n  default_schema_id: s\n  schemas:\n    - id: s\n      url: {url}\n"
        )
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "a secret file as a mapper",
            provider("file://tessera.secret"),
            "line 1, column 1",
        ),
        (
            "a file outside the folder",
            provider("file:///etc/hostname"),
            "its own folder",
        ),
        (
            "a schema outside the folder",
            schema("file:///etc/passwd"),
            "its own folder",
        ),
        (
            "a climb out of the folder",
            schema("file://../../../../etc/passwd"),
            "its own folder",
        ),
        (
            "the admin API itself",
            schema(&format!("https://127.0.0.1:{}/admin/identities", ports.1)),
            "non-public address",
        ),
        (
            "the cloud metadata service",
            schema("https://169.254.169.254/latest/meta-data/"),
            "non-public address",
        ),
        (
            "plain http",
            schema("http://schemas.example.com/person.json"),
            "https only",
        ),
    ];
    for (what, body, expected) in cases {
        let upload = dir.join("upload.yml");
        std::fs::write(&upload, &body).expect("write upload");
        let out = cli(&s.admin, &["update", "-f", upload.to_str().expect("utf-8")]);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{what}: accepted");
        assert!(
            err.contains(expected),
            "{what}: `{expected}` missing from:\n{err}"
        );
        assert!(!err.contains(secret), "{what}: the secret leaked:\n{err}");
        assert_eq!(
            std::fs::read_to_string(&file).expect("config"),
            original,
            "{what}: the file changed"
        );
    }
}

#[tokio::test]
async fn a_server_without_exactly_one_config_file_cannot_be_updated() {
    let dir = tessera_testkit::temp_dir();
    let ports = (free_port(), free_port());
    let (a, b) = (dir.join("a.yml"), dir.join("b.yml"));
    std::fs::write(&a, base_config(&dir, ports.0, ports.1)).expect("write");
    std::fs::write(&b, "log:\n  level: warn\n").expect("write");
    let s = start(&dir, &[a.clone(), b.clone()], ports).await;
    let out = cli(&s.admin, &["update", "-f", a.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("409") && err.contains("exactly one"), "{err}");
    assert!(err.contains("a.yml") && err.contains("b.yml"), "{err}");
    assert_eq!(s.config, a);
    // Downloading still works: it is the merged document.
    let out = cli(&s.admin, &["get", "--format", "json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["log"]["level"], "warn");
}
