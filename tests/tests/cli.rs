//! The README's lookup session as real processes: `federation init`,
//! `generate`, `import`, `serve` (node and coordinator), `keys init`,
//! `lookup --json`, then SIGTERM and a clean stop.

use fedq_tests::binaries::{listen_address, run_ok};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn fedq() -> Command {
    fedq_tests::binaries::command("fedq").expect("the fedq binary")
}

/// `fedq --config CONFIG`.
fn fedq_at(config: &Path) -> Command {
    let mut command = fedq();
    command.arg("--config").arg(config);
    command
}

fn fedq_node() -> anyhow::Result<Command> {
    fedq_tests::binaries::command("fedq-node")
}

struct Server(Child);

impl Server {
    fn terminate(mut self) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.0.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.0.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn wait_for_port(address: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(address).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{address} never started listening"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// `BINARY serve --config CONFIG`, its log as JSON lines to `log` (or
/// nowhere), once its port accepts connections.
fn serve(binary: &str, config: &Path, log: Option<&Path>) -> anyhow::Result<Server> {
    let mut command = fedq_tests::binaries::command(binary)?;
    command
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::null());
    match log {
        Some(path) => command
            .env("FEDQ_LOG_FORMAT", "json")
            .stderr(std::fs::File::create(path)?),
        None => command.stderr(Stdio::null()),
    };
    let server = Server(command.spawn()?);
    wait_for_port(&listen_address(config)?)?;
    Ok(server)
}

/// `fedq-node generate` into the node's `data/`, then `fedq-node import` of
/// its identifiers (and, with `table`, of its incidents table).
fn generate_and_import(
    config: &Path,
    jurisdiction: &str,
    people: &str,
    table: bool,
) -> anyhow::Result<()> {
    let data = config
        .parent()
        .ok_or_else(|| anyhow::anyhow!("a node directory"))?
        .join("data");
    run_ok(
        fedq_node()?
            .args([
                "generate",
                "--jurisdiction",
                jurisdiction,
                "--people",
                people,
            ])
            .args(["--seed", "5", "--out"])
            .arg(&data),
    )?;
    let mut import = fedq_node()?;
    import
        .args(["import", "--config"])
        .arg(config)
        .arg("--identifiers")
        .arg(data.join("identifiers.csv"));
    if table {
        import.arg("--table").arg(format!(
            "incidents={}",
            data.join("incidents.csv").display()
        ));
    }
    run_ok(&mut import)?;
    Ok(())
}

/// What a finished command printed, once its exit code is checked.
struct Printed {
    stdout: String,
    stderr: String,
}

/// Asserts that `output` exited with `code` and returns what it printed.
fn exited(output: std::process::Output, code: i32) -> anyhow::Result<Printed> {
    assert_eq!(output.status.code(), Some(code), "{output:?}");
    Ok(Printed {
        stdout: String::from_utf8(output.stdout)?,
        stderr: String::from_utf8(output.stderr)?,
    })
}

/// `fedq federation init ARGS` in a fresh temporary folder (kept as long as
/// the returned guard); returns the guard and the federation's folder.
fn federation(args: &[&str]) -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
    let temp = tempfile::tempdir()?;
    let dir = temp.path().join("fed");
    run_ok(
        fedq()
            .args(["federation", "init", "--dir"])
            .arg(&dir)
            .args(args),
    )?;
    Ok((temp, dir))
}

#[test]
fn a_lookup_session_from_the_command_line() -> anyhow::Result<()> {
    let (temp, dir) = federation(&["--nodes", "fr,de", "--padded-candidates", "64"])?;
    for name in [
        "federation.toml",
        "nodes/fr/node.toml",
        "nodes/de/node.toml",
        "coordinator/coordinator.toml",
        "requesters/alice/client.toml",
    ] {
        assert!(dir.join(name).exists(), "{name} written");
    }
    let again = fedq()
        .args(["federation", "init", "--dir"])
        .arg(&dir)
        .args(["--nodes", "fr"])
        .output()?;
    assert!(
        !again.status.success(),
        "an existing federation is not overwritten"
    );

    let mut servers: Vec<Server> = Vec::new();
    for node in ["fr", "de"] {
        let config = dir.join("nodes").join(node).join("node.toml");
        generate_and_import(&config, node, "400", true)?;
        servers.push(serve("fedq-node", &config, None)?);
    }
    let coordinator_config = dir.join("coordinator/coordinator.toml");
    let coordinator = serve("fedq-coordinator", &coordinator_config, None)?;

    let client = dir.join("requesters/alice/client.toml");
    run_ok(fedq_at(&client).args(["keys", "init"]))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("requesters/alice/keys/lookup.secret"))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the secret key file is private");
    }

    // A phone number present in fr's file, in another spelling, plus one absent.
    let fr = std::fs::read_to_string(dir.join("nodes/fr/data/identifiers.csv"))?;
    let phone = fr
        .lines()
        .find(|l| l.starts_with("phone,"))
        .and_then(|l| l.split(',').nth(1))
        .unwrap_or_default()
        .to_owned();
    let normal = fedq_crypto::normalise(fedq_crypto::IdentifierKind::Phone, &phone)?;
    let variant = format!("00{}", normal.as_str().trim_start_matches('+'));
    let stdout = run_ok(fedq_at(&client).args([
        "lookup",
        "--kind",
        "phone",
        "--value",
        &variant,
        "--purpose",
        "fraud",
        "--case",
        "C-1",
        "--json",
    ]))?;
    let json: serde_json::Value = serde_json::from_str(&stdout)?;
    assert_eq!(json["results"][0]["kind"], "phone");
    assert_eq!(json["results"][0]["value"], variant);
    assert_eq!(json["results"][0]["hit"], true);
    assert!(json["results"][0]["jurisdictions"].as_u64() >= Some(1));
    assert_eq!(json["nodes"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        json["query_ids"].as_array().map(Vec::len),
        Some(1),
        "{json}"
    );

    // Pinned OPRF keys: a key other than the pinned one is refused by the
    // requester, whoever relayed it; the node's own key, pinned, is used.
    let oprf_key = |node: &str| -> anyhow::Result<String> {
        let printed = run_ok(
            fedq_node()?
                .args(["oprf-key", "--config"])
                .arg(dir.join("nodes").join(node).join("node.toml")),
        )?;
        Ok(printed.trim().to_owned())
    };
    let (fr_key, de_key) = (oprf_key("fr")?, oprf_key("de")?);
    assert_eq!(fr_key.len(), 64, "{fr_key}");
    let pin = |node: &str, key: &str| -> anyhow::Result<String> {
        run_ok(
            fedq()
                .args(["federation", "pin-oprf-key", "--dir"])
                .arg(&dir)
                .args(["--node", node, "--key", key, "--replace"]),
        )
    };
    let lookup_json = || -> anyhow::Result<(Option<i32>, serde_json::Value)> {
        let out = fedq_at(&client)
            .args(["lookup", "--kind", "phone", "--value", &variant])
            .args(["--purpose", "fraud", "--case", "C-P", "--json"])
            .output()?;
        Ok((out.status.code(), serde_json::from_slice(&out.stdout)?))
    };
    pin("fr", &fr_key)?;
    pin("de", &fr_key)?;
    let (code, json) = lookup_json()?;
    // fr's hit stands on its own (exit 0); de's answer is refused.
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["results"][0]["answered"], 1, "{json}");
    let de = &json["nodes"][1];
    assert_eq!(de["node"], "de", "{json}");
    assert_ne!(de["status"], "ok", "{json}");
    assert!(
        de["reason"]
            .as_str()
            .is_some_and(|r| r.contains("is not one federation.toml pins")),
        "{json}"
    );
    pin("de", &de_key)?;
    let (code, json) = lookup_json()?;
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["results"][0]["hit"], true, "{json}");
    assert_eq!(json["results"][0]["answered"], 2, "{json}");
    let bad = fedq()
        .args(["federation", "pin-oprf-key", "--dir"])
        .arg(&dir)
        .args(["--node", "de", "--key", "00"])
        .output()?;
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");

    let batch = temp.path().join("batch.csv");
    std::fs::write(
        &batch,
        format!("kind,value\nphone,{phone}\nemail,no.one@example.invalid\n"),
    )?;
    let stdout = run_ok(
        fedq_at(&client)
            .args(["lookup", "--batch"])
            .arg(&batch)
            .args(["--purpose", "fraud", "--case", "C-2"]),
    )?;
    assert!(stdout.contains("HIT in"), "{stdout}");
    assert!(stdout.contains("no hit"), "{stdout}");
    assert!(
        stdout.contains("\nquery "),
        "a query id in every output: {stdout}"
    );
    assert!(
        stdout.contains("node fr: ok\nnode de: ok"),
        "federation order: {stdout}"
    );
    let quiet = run_ok(
        fedq_at(&client)
            .args(["lookup", "--quiet", "--batch"])
            .arg(&batch)
            .args(["--purpose", "fraud", "--case", "C-2"]),
    )?;
    assert_eq!(quiet.lines().count(), 2, "only the answers: {quiet}");
    let completions = run_ok(fedq().args(["completions", "bash"]))?;
    assert!(
        completions.contains("_fedq()"),
        "a bash completion function"
    );

    let bad = fedq_at(&client)
        .args([
            "lookup",
            "--kind",
            "phone",
            "--value",
            "12",
            "--purpose",
            "p",
            "--case",
            "c",
        ])
        .output()?;
    assert!(!bad.status.success());
    assert!(String::from_utf8(bad.stderr)?.contains("invalid identifiers, nothing was sent"));

    // A mistyped kind is a usage error with a suggestion; nothing is sent.
    let typo = fedq_at(&client)
        .args([
            "lookup",
            "--kind",
            "phnoe",
            "--value",
            "1",
            "--purpose",
            "p",
        ])
        .args(["--case", "c"])
        .output()?;
    let stderr = exited(typo, 2)?.stderr;
    assert!(stderr.contains("did you mean \"phone\"?"), "{stderr}");
    // Blank case references and non-positive budgets are usage errors, before
    // anything is sent (`-1` is read as a number, not as a flag).
    let lookup = "lookup --kind phone --value +33612345678 --purpose p --case";
    let count = "stats --table incidents --measure count --purpose research";
    for (line, tail) in [
        (lookup, &[" "][..]),
        (count, &["--epsilon", "-1"][..]),
        (count, &["--rho", "0"][..]),
    ] {
        let args: Vec<&str> = line
            .split_whitespace()
            .chain(tail.iter().copied())
            .collect();
        let refused = fedq_at(&client).args(&args).output()?;
        assert_eq!(refused.status.code(), Some(2), "{args:?}: {refused:?}");
        let stderr = String::from_utf8(refused.stderr)?;
        assert!(
            stderr.contains("must not be empty") || stderr.contains("greater than zero"),
            "{args:?}: {stderr}"
        );
    }
    let nothing = fedq_at(&client)
        .args(["lookup", "--purpose", "p", "--case", "c"])
        .output()?;
    assert_eq!(nothing.status.code(), Some(2), "{nothing:?}");

    // `--batch -` reads the same rows from standard input.
    let mut piped = fedq_at(&client)
        .args([
            "lookup",
            "--batch",
            "-",
            "--purpose",
            "fraud",
            "--case",
            "C-2",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = piped.stdin.take() {
        use std::io::Write;
        stdin.write_all(std::fs::read(&batch)?.as_slice())?;
    }
    let piped = piped.wait_with_output()?;
    assert!(piped.status.success(), "{piped:?}");
    let stdout = String::from_utf8(piped.stdout)?;
    assert!(
        stdout.contains("HIT in") && stdout.contains("no hit"),
        "{stdout}"
    );

    // Refused by every node's policy: nothing answered, exit 4.
    let refused = fedq_at(&client)
        .args(["lookup", "--batch"])
        .arg(&batch)
        .args(["--purpose", "curiosity", "--case", "C-3", "--json"])
        .output()?;
    assert_eq!(refused.status.code(), Some(4), "{refused:?}");
    let json: serde_json::Value = serde_json::from_slice(&refused.stdout)?;
    assert_eq!(json["results"][1]["answer"], "unknown", "{json}");
    assert_eq!(json["results"][1]["hit"], false, "{json}");

    // Statistics that nobody would answer exit non-zero, once, with the
    // reason: outside every node's published per-query range (2, before
    // anything is sent), and a purpose no node admits (4).
    let researcher = dir.join("requesters/rosa/client.toml");
    let stats = |epsilon: &str, purpose: &str| -> anyhow::Result<std::process::Output> {
        Ok(fedq_at(&researcher)
            .args(["stats", "--table", "incidents", "--measure", "count"])
            .args(["--epsilon", epsilon, "--purpose", purpose, "--case", "S-1"])
            .output()?)
    };
    let tiny = stats("1e-300", "research")?;
    let stderr = exited(tiny, 2)?.stderr;
    assert!(
        stderr.contains("is below every node's minimum per query (fr 0.01, de 0.01)"),
        "checked against the catalog before sending: {stderr}"
    );
    let huge = stats("11", "research")?;
    assert_eq!(huge.status.code(), Some(2), "{huge:?}");
    assert!(String::from_utf8(huge.stderr)?.contains("above every node's monthly cap"));
    let curious = stats("0.5", "curiosity")?;
    assert_eq!(curious.status.code(), Some(4), "{curious:?}");
    // Each role its own action: alice (investigator) asks no statistics.
    let investigator = fedq_at(&client)
        .args(["stats", "--table", "incidents", "--measure", "count"])
        .args(["--epsilon", "1", "--purpose", "research"])
        .output()?;
    let stdout = exited(investigator, 4)?.stdout;
    assert!(
        stdout.contains("role investigator may not stats at this node"),
        "{stdout}"
    );

    // A dry run says what the query would add and cost, and spends nothing.
    let budget = || -> anyhow::Result<serde_json::Value> {
        let out = run_ok(fedq_at(&researcher).args(["budget", "--json"]))?;
        Ok(serde_json::from_str(&out)?)
    };
    let before = budget()?;
    let stats_with = |extra: &[&str]| -> anyhow::Result<std::process::Output> {
        Ok(fedq_at(&researcher)
            .args(["stats", "--table", "incidents", "--measure", "count"])
            .args(["--purpose", "research", "--case", "S-2"])
            .args(extra)
            .output()?)
    };
    let dry = stats_with(&["--epsilon", "1", "--dry-run", "--json"])?;
    assert_eq!(dry.status.code(), Some(0), "{dry:?}");
    let json: serde_json::Value = serde_json::from_slice(&dry.stdout)?;
    assert_eq!(json["dry_run"], true, "{json}");
    assert_eq!(json["groups"].as_array().map(Vec::len), Some(0), "{json}");
    let noise = &json["noise"][0];
    assert_eq!(noise["epsilon"].as_f64(), Some(1.0), "{json}");
    // One currency: epsilon 1 costs rho 0.5 (OpenDP's zCDP cast) of the
    // generated monthly cap of rho 2.
    assert_eq!(noise["cost"].as_f64(), Some(0.5), "{json}");
    assert_eq!(noise["rho_left"].as_f64(), Some(1.5), "{json}");
    assert_eq!(
        noise["epsilon_left"].as_f64(),
        Some(3.0_f64.sqrt()),
        "{json}"
    );
    assert!(noise["ci95_half_width"].as_f64() > Some(0.0), "{json}");
    assert_eq!(budget()?, before, "a dry run spends nothing");
    let human = String::from_utf8(stats_with(&["--epsilon", "1", "--dry-run"])?.stdout)?;
    assert!(human.contains("nothing was read or charged"), "{human}");
    assert!(
        human.contains("would cost epsilon 1 (rho 0.5), would leave rho 1.5 this epoch"),
        "{human}"
    );

    // Every answer says what it cost and what is left.
    let answered = stats_with(&["--epsilon", "1"])?;
    let human = exited(answered, 0)?.stdout;
    assert!(
        human.contains("cost epsilon 1 (rho 0.5), left rho 1.5 this epoch"),
        "{human}"
    );
    let spent = budget()?;
    assert_ne!(spent, before, "an answer is charged");
    let fr = &spent["nodes"][0];
    assert_eq!(fr["rho_spent"].as_f64(), Some(0.5), "{spent}");
    assert_eq!(fr["epsilon_spent"].as_f64(), Some(1.0), "{spent}");
    assert_eq!(fr["agency_rho_spent"].as_f64(), Some(0.5), "{spent}");
    assert_eq!(fr["lifetime_rho_spent"].as_f64(), Some(0.5), "{spent}");
    assert!(fr["epsilon_at_delta"].as_f64() > Some(1.0), "{spent}");
    // Pure-DP spending leaves no more for a zCDP query than its cost says:
    // after epsilon 1.7 (rho 1.445) a Gaussian query of rho 0.06 is refused,
    // with the numbers: asked, left, cap, renewal.
    exited(stats_with(&["--epsilon", "1.7"])?, 0)?;
    let over = stats_with(&["--rho", "0.06"])?;
    let human = exited(over, 4)?.stdout;
    assert!(
        human.contains(
            "the query costs rho 0.06, rho 0.055 of 2 is left (at most epsilon 0.3317 in one \
             pure-DP query) (renews "
        ),
        "{human}"
    );

    let status = fedq_at(&client).args(["status", "--json"]).output()?;
    assert_eq!(status.status.code(), Some(0), "{status:?}");

    // The operator narrows fr's policy and sends SIGHUP: fr refuses at once,
    // without a restart; restored, it answers again.
    let fr_toml = dir.join("nodes/fr/node.toml");
    let original = std::fs::read_to_string(&fr_toml)?;
    let narrowed = original.replace("lookup = [\"fraud\", ", "lookup = [");
    assert_ne!(narrowed, original, "the generated policy admits fraud");
    let fr_pid = servers[0].0.id().to_string();
    let fraud_lookup = || -> anyhow::Result<(Option<i32>, serde_json::Value)> {
        let out = fedq_at(&client)
            .args(["lookup", "--batch"])
            .arg(&batch)
            .args(["--purpose", "fraud", "--case", "C-5", "--json"])
            .output()?;
        Ok((out.status.code(), serde_json::from_slice(&out.stdout)?))
    };
    let reload_until = |text: &str, done: &dyn Fn(Option<i32>) -> bool| -> anyhow::Result<()> {
        std::fs::write(&fr_toml, text)?;
        Command::new("kill").args(["-HUP", &fr_pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (code, json) = fraud_lookup()?;
            if done(code) {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "policy not reloaded: {json}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    reload_until(&narrowed, &|code| code == Some(3))?;
    let (_, json) = fraud_lookup()?;
    assert_eq!(json["nodes"][0]["node"], "fr", "{json}");
    assert_eq!(json["nodes"][0]["status"], "refused", "{json}");
    reload_until(&original, &|code| code == Some(0))?;

    // A node down: what only it could say is unknown, never "no hit"; exit 3
    // unless the requester accepts a partial answer.
    let de = anyhow::Context::context(servers.pop(), "node de")?;
    assert!(de.terminate()?.success(), "node de stops on SIGTERM");
    let partial = |extra: &[&str]| -> anyhow::Result<std::process::Output> {
        Ok(fedq_at(&client)
            .args(["lookup", "--batch"])
            .arg(&batch)
            .args(["--purpose", "fraud", "--case", "C-4"])
            .args(extra)
            .output()?)
    };
    let status = fedq_at(&client).args(["status", "--json"]).output()?;
    assert_eq!(status.status.code(), Some(3), "{status:?}");
    let json: serde_json::Value = serde_json::from_slice(&status.stdout)?;
    assert_eq!(json["nodes"][0]["node"], "fr", "{json}");
    assert_eq!(json["nodes"][0]["status"], "ok", "{json}");
    assert_eq!(json["nodes"][1]["node"], "de", "{json}");
    assert_ne!(json["nodes"][1]["status"], "ok", "{json}");
    let de_address = listen_address(&dir.join("nodes/de/node.toml"))?;
    assert!(
        json["nodes"][1]["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&format!("de at {de_address}"))),
        "an unreachable node is named with its address: {json}"
    );
    let human = partial(&[])?;
    let stdout = exited(human, 3)?.stdout;
    assert!(
        stdout.contains("unknown (1 of 2 nodes answered)"),
        "{stdout}"
    );
    assert!(!stdout.contains("no hit"), "{stdout}");
    let json = partial(&["--json", "--allow-partial"])?;
    assert_eq!(json.status.code(), Some(0), "{json:?}");
    let json: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    let absent = &json["results"][1];
    assert_eq!(absent["answer"], "unknown", "{json}");
    assert_eq!(
        (absent["answered"].as_u64(), absent["of"].as_u64()),
        (Some(1), Some(2))
    );

    assert!(
        coordinator.terminate()?.success(),
        "coordinator stops cleanly on SIGTERM"
    );
    for server in servers {
        assert!(
            server.terminate()?.success(),
            "node stops cleanly on SIGTERM"
        );
    }
    Ok(())
}

/// A federation that chooses less compression: `federation init
/// --compression` writes it, the requester's client sends no more than it
/// allows, and its node refuses anything more. A batch of three would go as
/// one packed group by default, which such a node refuses: the hit below
/// is found only if the client kept to the federation's choice.
#[test]
fn a_federation_choosing_less_compression_is_kept_to() -> anyhow::Result<()> {
    let bad = fedq()
        .args([
            "federation",
            "init",
            "--dir",
            "unused",
            "--compression",
            "most",
        ])
        .output()?;
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    for choice in ["single", "none"] {
        let (temp, dir) = federation(&["--nodes", "fr", "--compression", choice])?;
        let file = std::fs::read_to_string(dir.join("federation.toml"))?;
        assert!(
            file.contains(&format!("compression = \"{choice}\"")),
            "{file}"
        );
        let node = dir.join("nodes/fr/node.toml");
        generate_and_import(&node, "fr", "100", false)?;
        let _node = serve("fedq-node", &node, None)?;
        let _coordinator = serve(
            "fedq-coordinator",
            &dir.join("coordinator/coordinator.toml"),
            None,
        )?;
        let client = dir.join("requesters/alice/client.toml");
        run_ok(fedq_at(&client).args(["keys", "init"]))?;
        let fr = std::fs::read_to_string(dir.join("nodes/fr/data/identifiers.csv"))?;
        let phone = fr
            .lines()
            .find_map(|l| l.strip_prefix("phone,"))
            .and_then(|rest| rest.split(',').next())
            .ok_or_else(|| anyhow::anyhow!("a phone number in fr's data"))?
            .to_owned();
        let batch = temp.path().join("batch.csv");
        std::fs::write(
            &batch,
            format!(
                "kind,value\nphone,{phone}\nemail,no.one@example.invalid\nemail,nobody@example.invalid\n"
            ),
        )?;
        let stdout = run_ok(
            fedq_at(&client)
                .args(["lookup", "--json", "--batch"])
                .arg(&batch)
                .args(["--purpose", "fraud", "--case", "C-C"]),
        )?;
        let json: serde_json::Value = serde_json::from_str(&stdout)?;
        assert_eq!(json["nodes"][0]["status"], "ok", "{choice}: {json}");
        let hits: Vec<_> = (0..3).map(|i| json["results"][i]["hit"].clone()).collect();
        assert_eq!(hits, [true, false, false], "{choice}: {json}");
    }
    Ok(())
}

/// Every file under `dir` with its bytes, to show that nothing changed.
fn snapshot(dir: &Path) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path)?));
            }
        }
    }
    files.sort();
    Ok(files)
}

#[test]
fn the_readme_demo_runs_and_never_overwrites_a_directory_unasked() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = temp.path().join("demo");
    let stdout = run_ok(fedq().args(["demo", "--people", "2000", "--dir"]).arg(&dir))?;
    assert!(stdout.contains("audit logs"), "{stdout}");
    assert!(stdout.contains("refused"), "{stdout}");

    let before = snapshot(&dir)?;
    let again = fedq()
        .args(["demo", "--people", "2000", "--dir"])
        .arg(&dir)
        .output()?;
    assert!(!again.status.success(), "{again:?}");
    assert!(
        String::from_utf8(again.stderr)?.contains("is not empty"),
        "the refusal says why"
    );
    assert!(
        snapshot(&dir)? == before,
        "the kept federation is unchanged"
    );

    let few = fedq().args(["demo", "--people", "10"]).output()?;
    assert_eq!(few.status.code(), Some(2), "{few:?}");

    // A missing config file: the path and the cause, each once.
    let missing = fedq()
        .arg("--config")
        .arg(temp.path().join("nowhere.toml"))
        .args(["budget"])
        .output()?;
    let stderr = exited(missing, 2)?.stderr;
    assert!(stderr.contains("nowhere.toml"), "{stderr}");
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
    Ok(())
}

/// `check-config` of every party finds what would only fail later, each
/// with its key path; `audit verify` changes nothing it reads.
#[test]
fn check_config_names_broken_keys_and_audit_verify_writes_nothing() -> anyhow::Result<()> {
    let (_temp, dir) = federation(&["--nodes", "fr,de"])?;
    let listed = run_ok(
        fedq()
            .args(["federation", "list", "--json", "--dir"])
            .arg(&dir),
    )?;
    let listed: serde_json::Value = serde_json::from_str(&listed)?;
    assert_eq!(listed["nodes"][1]["id"], "de", "{listed}");
    assert_eq!(listed["requesters"][0]["role"], "investigator", "{listed}");
    assert_eq!(listed["requesters"][1]["id"], "rosa", "{listed}");
    let node = dir.join("nodes/fr/node.toml");
    let coordinator = dir.join("coordinator/coordinator.toml");
    let client = dir.join("requesters/alice/client.toml");
    let out = run_ok(fedq_node()?.args(["check-config", "--config"]).arg(&node))?;
    assert!(out.contains("ok: node fr"), "{out}");
    let out = run_ok(
        fedq_tests::binaries::command("fedq-coordinator")?
            .args(["check-config", "--config"])
            .arg(&coordinator),
    )?;
    assert!(out.contains("ok: coordinator of 2 node(s)"), "{out}");
    let out = run_ok(fedq_at(&client).arg("check-config"))?;
    assert!(out.contains("ok: requester alice"), "{out}");

    // fr's config pointing at de's certificate, with a bad listen address:
    // both named, with their key paths, in one run; exit 2.
    let text = std::fs::read_to_string(&node)?;
    let broken = text
        .lines()
        .map(|line| {
            if line.starts_with("listen") {
                "listen = \"nowhere\""
            } else if line.starts_with("cert") {
                "cert = \"../de/tls/node.pem\""
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&node, broken)?;
    let bad = fedq_node()?
        .args(["check-config", "--config"])
        .arg(&node)
        .output()?;
    let stderr = exited(bad, 2)?.stderr;
    assert!(stderr.contains("listen: not a socket address"), "{stderr}");
    std::fs::write(&node, &text)?;
    std::fs::write(
        &node,
        text.replace("cert = \"tls/node.pem\"", "cert = \"../de/tls/node.pem\""),
    )?;
    let bad = fedq_node()?
        .args(["check-config", "--config"])
        .arg(&node)
        .output()?;
    let stderr = exited(bad, 2)?.stderr;
    assert!(
        stderr.contains("tls.cert: issued to \"de\", but this config is for \"fr\""),
        "{stderr}"
    );
    std::fs::write(&node, &text)?;

    // A signing key others can read is refused before anything is signed.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = dir.join("requesters/alice/signing.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644))?;
        let bad = fedq_at(&client).arg("check-config").output()?;
        let stderr = exited(bad, 2)?.stderr;
        assert!(
            stderr.contains("signing_key:") && stderr.contains("readable by others"),
            "{stderr}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    }

    // audit verify on a store that does not exist creates nothing; on one
    // that does, it verifies and leaves every byte as it was.
    let missing = fedq_node()?
        .args(["audit", "verify", "--config"])
        .arg(&node)
        .output()?;
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    let fr = dir.join("nodes/fr");
    assert!(
        !snapshot(&fr)?
            .iter()
            .any(|(path, _)| path.extension().is_some_and(|e| e == "db")),
        "verify created no store"
    );
    generate_and_import(&node, "fr", "300", false)?;
    run_ok(
        fedq_node()?
            .args(["report", "--month", "2026-01", "--config"])
            .arg(&node),
    )?;
    // SQLite's lock files (-wal, -shm) may appear beside the store: they
    // coordinate readers with a node that may be writing, and hold no data.
    let content = |dir: &Path| -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
        let mut files = snapshot(dir)?;
        files.retain(|(path, _)| {
            let name = path.to_string_lossy();
            !(name.ends_with("-wal") || name.ends_with("-shm"))
        });
        Ok(files)
    };
    let before = content(&fr)?;
    let out = run_ok(
        fedq_node()?
            .args(["audit", "verify", "--config"])
            .arg(&node),
    )?;
    assert!(out.contains("audit log ok"), "{out}");
    assert!(content(&fr)? == before, "verify changed nothing");
    Ok(())
}

/// Peak resident memory of a process since the last reset, in KiB (Linux).
fn peak_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/{pid}/status"))
}

/// A caller the node does not admit cannot make it spend memory: eight
/// concurrent 40 MB lookups from a requester's certificate, straight to a
/// running `fedq-node`, are refused before their bodies are read, and the
/// node's peak resident memory grows by at most 10 MB.
#[cfg(target_os = "linux")]
#[test]
fn a_refused_caller_cannot_make_a_node_buffer_its_bodies() -> anyhow::Result<()> {
    let (_temp, dir) = federation(&["--nodes", "fr"])?;
    let config = dir.join("nodes/fr/node.toml");
    generate_and_import(&config, "fr", "200", false)?;
    let node = serve("fedq-node", &config, None)?;
    let address = listen_address(&config)?;
    let pid = node.0.id();
    // Forget the start-up peak (index load) to count only what follows.
    // Where the kernel refuses, the start-up peak stays the baseline: the
    // check is then weaker (growth up to it goes unseen), never wrong.
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let idle = peak_kib(pid)?;

    let alice = fedq_client::ClientConfig::load(&dir.join("requesters/alice/client.toml"))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let codes = runtime.block_on(async {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("https://{address}"))?
            .tls_config(fedq_transport::tls::client_config(&alice.tls, "fr")?)?;
        let channel = endpoint.connect().await?;
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let mut client = fedq_proto::v1::node_client::NodeClient::new(channel.clone())
                .max_encoding_message_size(64 << 20);
            calls.spawn(async move {
                let request = fedq_proto::v1::NodeLookupRequest {
                    items: vec![fedq_proto::v1::LookupItem {
                        kind: 3,
                        bucket: 0,
                        encrypted_tag: vec![0x5a; 40 << 20],
                    }],
                    ..Default::default()
                };
                client.lookup(request).await.err().map(|s| s.code())
            });
        }
        anyhow::Ok(calls.join_all().await)
    })?;
    let peak = peak_kib(pid)?;
    assert!(
        codes
            .iter()
            .all(|c| *c == Some(tonic::Code::PermissionDenied)),
        "{codes:?}"
    );
    println!("node peak resident memory: idle {idle} KiB, under 8 x 40 MB refused: {peak} KiB");
    assert!(
        peak.saturating_sub(idle) <= 10 * 1024,
        "the node's peak grew by {} KiB",
        peak - idle
    );
    assert!(node.terminate()?.success());
    Ok(())
}

/// A free loopback port for a metrics endpoint.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The Prometheus text a metrics endpoint serves (plain HTTP GET).
fn scrape(port: u16) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    anyhow::ensure!(response.starts_with("HTTP/1.1 200"), "{response}");
    Ok(response)
}

/// What an operator watches a running node with: the Prometheus endpoint
/// (`[metrics]`), standard gRPC health and reflection over mTLS (what
/// grpcurl uses), and JSON logs whose request ids are the audit log's.
#[test]
fn operators_scrape_metrics_list_services_and_join_logs_to_the_audit() -> anyhow::Result<()> {
    let (_temp, dir) = federation(&["--nodes", "fr"])?;
    let config = dir.join("nodes/fr/node.toml");
    let coordinator_config = dir.join("coordinator/coordinator.toml");
    let (node_port, coordinator_port) = (free_port()?, free_port()?);
    for (file, port) in [
        (&config, node_port),
        (&coordinator_config, coordinator_port),
    ] {
        let mut text = std::fs::read_to_string(file)?;
        text.push_str(&format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"));
        std::fs::write(file, text)?;
    }
    generate_and_import(&config, "fr", "300", true)?;
    let log = dir.join("fr.log");
    let node = serve("fedq-node", &config, Some(&log))?;
    let address = listen_address(&config)?;
    let coordinator = serve("fedq-coordinator", &coordinator_config, None)?;

    // One answered statistics query (rosa) and one refused (alice's role).
    let stats = |who: &str| {
        fedq_at(&dir.join(format!("requesters/{who}/client.toml")))
            .args(["stats", "--table", "incidents", "--measure", "count"])
            .args(["--epsilon", "0.5", "--purpose", "research", "--json"])
            .output()
    };
    let answered: serde_json::Value = serde_json::from_str(&exited(stats("rosa")?, 0)?.stdout)?;
    let query_id = answered["query_id"].as_str().unwrap_or_default().to_owned();
    assert!(!query_id.is_empty(), "{answered}");
    exited(stats("alice")?, 4)?;
    // And one lookup, which runs on the evaluation pool.
    let alice = dir.join("requesters/alice/client.toml");
    run_ok(fedq_at(&alice).args(["keys", "init"]))?;
    run_ok(fedq_at(&alice).args([
        "lookup",
        "--kind",
        "email",
        "--value",
        "nobody@example.org",
        "--purpose",
        "fraud",
        "--case",
        "C-9",
    ]))?;

    let metrics = scrape(node_port)?;
    for series in [
        "fedq_requests_total{action=\"stats\",decision=\"admitted\"} 1",
        "fedq_refusals_total{action=\"stats\",reason=\"refused by policy rule role\"} 1",
        "fedq_rpc_seconds_count{rpc=\"Stats\"} 2",
        "fedq_budget_spent{requester=\"rosa\",",
        "fedq_audit_entries ",
        "fedq_requests_total{action=\"lookup\",decision=\"admitted\"} 1",
        "fedq_pool_queued_requests{pool=",
        // Two Lookup calls: the first asks for the requester's expansion
        // key, the second carries it.
        "fedq_rpc_seconds_count{rpc=\"Lookup\"} 2",
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from:\n{metrics}"
        );
    }
    assert!(
        !metrics.contains("research") && !metrics.contains(&query_id),
        "no purpose or query id in labels:\n{metrics}"
    );
    let coordinator_metrics = scrape(coordinator_port)?;
    assert!(
        coordinator_metrics.contains("fedq_rpc_seconds_count{rpc=\"Stats\"} 2"),
        "{coordinator_metrics}"
    );

    // Health and reflection answer any certificate of the federation, here
    // the researcher's, which may not call the node's own API.
    let rosa = fedq_client::ClientConfig::load(&dir.join("requesters/rosa/client.toml"))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let (health, services) = runtime.block_on(async {
        use tonic_reflection::pb::v1::{
            server_reflection_client::ServerReflectionClient, server_reflection_request,
            server_reflection_response, ServerReflectionRequest,
        };
        let channel = tonic::transport::Endpoint::from_shared(format!("https://{address}"))?
            .tls_config(fedq_transport::tls::client_config(&rosa.tls, "fr")?)?
            .connect()
            .await?;
        let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
            .check(tonic_health::pb::HealthCheckRequest {
                service: "fedq.v1.Node".to_owned(),
            })
            .await?
            .into_inner()
            .status;
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        };
        // A method no service routes, under a prefix admitted without the
        // caller check: refused, and its name never becomes a metric label.
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await?;
        let unrouted = grpc
            .unary::<(), (), _>(
                tonic::Request::new(()),
                tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/grpc.reflection.v1.Attacker/ChosenLabelName",
                ),
                fedq_proto::codec::FedqCodec::default(),
            )
            .await
            .expect_err("no such method");
        assert_eq!(unrouted.code(), tonic::Code::Unimplemented);
        let mut answers = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await?
            .into_inner();
        let mut services = Vec::new();
        while let Some(answer) = answers.message().await? {
            if let Some(server_reflection_response::MessageResponse::ListServicesResponse(list)) =
                answer.message_response
            {
                services.extend(list.service.into_iter().map(|s| s.name));
            }
        }
        anyhow::Ok((health, services))
    })?;
    assert_eq!(
        health,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    for service in ["fedq.v1.Node", "grpc.health.v1.Health"] {
        assert!(services.iter().any(|s| s == service), "{services:?}");
    }
    let metrics = scrape(node_port)?;
    assert!(
        metrics.contains("fedq_rpc_seconds_count{rpc=\"unrouted\"} 1")
            && !metrics.contains("ChosenLabelName"),
        "{metrics}"
    );

    // The JSON log line of the answered query names the audit's query id.
    assert!(node.terminate()?.success());
    assert!(coordinator.terminate()?.success());
    let logged = std::fs::read_to_string(&log)?;
    let lines: Vec<serde_json::Value> = logged
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["query_id"] == query_id.as_str()),
        "no log line for query {query_id}:\n{logged}"
    );
    let export = run_ok(
        fedq_node()?
            .args([
                "audit",
                "export",
                "--since",
                "2000-01-01",
                "--until",
                "2100-01-01",
                "--config",
            ])
            .arg(&config),
    )?;
    assert!(export.contains(&query_id), "{export}");
    Ok(())
}

/// An agency's own PKI instead of `federation init`'s development CA: a
/// P-384 root, an issuing CA under it, and leaves with full subjects and
/// only their id as DNS name (the profile the README states), made here
/// with rcgen. The parties serve and answer with them, and a certificate of
/// the old CA no longer gets in.
#[test]
fn an_agencys_own_ca_and_certificates_work() -> anyhow::Result<()> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let (_temp, dir) = federation(&["--nodes", "fr"])?;
    let subject = |params: &mut CertificateParams, name: &str| {
        params.distinguished_name.push(DnType::CountryName, "FR");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Agence nationale de test");
        params.distinguished_name.push(DnType::CommonName, name);
    };
    let mut root = CertificateParams::new(Vec::<String>::new())?;
    subject(&mut root, "Agence Root CA 2026");
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root =
        CertifiedIssuer::self_signed(root, KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?)?;
    let mut issuing = CertificateParams::new(Vec::<String>::new())?;
    subject(&mut issuing, "Agence Issuing CA 1");
    issuing.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    issuing.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let issuing = CertifiedIssuer::signed_by(issuing, KeyPair::generate()?, &root)?;
    std::fs::write(dir.join("ca/ca.pem"), root.pem())?;
    let (server, client) = (
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    for (id, usages, stem) in [
        ("fr", vec![server.clone()], "nodes/fr/tls/node"),
        (
            "coordinator",
            vec![server, client.clone()],
            "coordinator/tls/coordinator",
        ),
        ("rosa", vec![client], "requesters/rosa/tls/requester"),
    ] {
        let mut leaf = CertificateParams::new(vec![id.to_owned()])?;
        subject(&mut leaf, id);
        leaf.distinguished_name
            .push(DnType::OrganizationalUnitName, "fedq operations");
        leaf.extended_key_usages = usages;
        let key = KeyPair::generate()?;
        let cert = leaf.signed_by(&key, &issuing)?;
        // The leaf, then the issuing CA: peers hold only the root.
        std::fs::write(dir.join(format!("{stem}.pem")), cert.pem() + &issuing.pem())?;
        fedq_transport::files::write_private(
            &dir.join(format!("{stem}.key")),
            key.serialize_pem().as_bytes(),
        )?;
    }

    let config = dir.join("nodes/fr/node.toml");
    let coordinator_config = dir.join("coordinator/coordinator.toml");
    exited(
        fedq_node()?
            .args(["check-config", "--config"])
            .arg(&config)
            .output()?,
        0,
    )?;
    generate_and_import(&config, "fr", "300", true)?;
    let _node = serve("fedq-node", &config, None)?;
    let _coordinator = serve("fedq-coordinator", &coordinator_config, None)?;
    let stats = |who: &str| {
        fedq_at(&dir.join(format!("requesters/{who}/client.toml")))
            .args(["stats", "--table", "incidents", "--measure", "count"])
            .args(["--epsilon", "0.5", "--purpose", "research"])
            .output()
    };
    let answered = exited(stats("rosa")?, 0)?;
    assert!(
        answered.stdout.contains("cost epsilon 0.5"),
        "{}",
        answered.stdout
    );
    // alice still holds a certificate of the development CA.
    let outsider = stats("alice")?;
    assert_eq!(outsider.status.code(), Some(1), "{outsider:?}");
    Ok(())
}
