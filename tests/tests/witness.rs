//! Witnessed audit checkpoints, from the dishonest node operator's side, as
//! real processes over mutual TLS: the coordinator countersigns each node's
//! signed head; the operator stops the node, rolls its log back (or rewrites
//! it) and re-signs everything with the node's own key file, which is all a
//! node operator holds; the node's own `audit verify` is satisfied, but the
//! coordinator refuses the checkpoint (alarm, warning, its own audit entry)
//! and `fedq-node audit verify --witness` exits 5.

use fedq_tests::binaries::{listen_address, run_ok};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use fedq_crypto::audit_key::AuditSigningKey;

fn command(binary: &str) -> anyhow::Result<Command> {
    fedq_tests::binaries::command(binary)
}

struct Server(Child);

impl Server {
    fn terminate(mut self) -> anyhow::Result<()> {
        let pid = self.0.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.0.try_wait()?.is_none() {
            anyhow::ensure!(Instant::now() < deadline, "server did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

/// `BINARY serve --config CONFIG`, its log to `log`, once it listens.
fn serve(binary: &str, config: &Path, log: &Path) -> anyhow::Result<Server> {
    let address = listen_address(config)?;
    let server = Server(
        command(binary)?
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)?,
            )
            .spawn()?,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(&address).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "{binary} never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(server)
}

/// Polls `check` every 200 ms for up to 60 s.
fn eventually<T>(
    what: &str,
    mut check: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(done) = check()? {
            return Ok(done);
        }
        anyhow::ensure!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A one-node federation whose coordinator witnesses every second, with
/// the node and the coordinator serving and two statistics answered.
struct Federation {
    node: Option<Server>,
    _coordinator: Server,
    dir: PathBuf,
    /// Last: removed once both servers are gone.
    _temp: tempfile::TempDir,
}

impl Federation {
    fn start() -> anyhow::Result<Self> {
        let temp = tempfile::tempdir()?;
        let dir = temp.path().join("fed");
        run_ok(
            command("fedq")?
                .args(["federation", "init", "--nodes", "fr", "--dir"])
                .arg(&dir),
        )?;
        let coordinator = dir.join("coordinator/coordinator.toml");
        let text = std::fs::read_to_string(&coordinator)?;
        anyhow::ensure!(text.contains("interval_seconds = 60"), "{text}");
        std::fs::write(
            &coordinator,
            text.replace("interval_seconds = 60", "interval_seconds = 1"),
        )?;
        let data = dir.join("nodes/fr/data");
        run_ok(
            command("fedq-node")?
                .args([
                    "generate",
                    "--jurisdiction",
                    "fr",
                    "--people",
                    "200",
                    "--out",
                ])
                .arg(&data),
        )?;
        run_ok(
            command("fedq-node")?
                .args(["import", "--config"])
                .arg(dir.join("nodes/fr/node.toml"))
                .arg("--identifiers")
                .arg(data.join("identifiers.csv"))
                .arg("--table")
                .arg(format!(
                    "incidents={}",
                    data.join("incidents.csv").display()
                )),
        )?;
        let mut federation = Self {
            node: None,
            _coordinator: serve(
                "fedq-coordinator",
                &coordinator,
                &dir.join("coordinator.log"),
            )?,
            dir,
            _temp: temp,
        };
        federation.start_node()?;
        for _ in 0..2 {
            run_ok(
                command("fedq")?
                    .arg("--config")
                    .arg(federation.dir.join("requesters/rosa/client.toml"))
                    .args(["stats", "--table", "incidents", "--measure", "count"])
                    .args(["--epsilon", "0.5", "--purpose", "research"]),
            )?;
        }
        Ok(federation)
    }

    fn node_toml(&self) -> PathBuf {
        self.dir.join("nodes/fr/node.toml")
    }

    fn coordinator_toml(&self) -> PathBuf {
        self.dir.join("coordinator/coordinator.toml")
    }

    fn start_node(&mut self) -> anyhow::Result<()> {
        self.node = Some(serve(
            "fedq-node",
            &self.node_toml(),
            &self.dir.join("node.log"),
        )?);
        Ok(())
    }

    fn stop_node(&mut self) -> anyhow::Result<()> {
        self.node.take().context("a running node")?.terminate()
    }

    /// The seq of the node's signed head, from its checkpoint file.
    fn signed_seq(&self) -> anyhow::Result<u64> {
        let text = std::fs::read_to_string(self.dir.join("nodes/fr/data/audit.checkpoint"))?;
        let checkpoint: serde_json::Value = serde_json::from_str(&text)?;
        checkpoint["seq"].as_u64().context("a seq")
    }

    /// `witness export` of node fr into a file; returns it once the
    /// coordinator has countersigned the node's current head.
    fn witnessed_head(&self) -> anyhow::Result<PathBuf> {
        let head = self.signed_seq()?;
        anyhow::ensure!(head >= 2, "two answered statistics were audited");
        let file = self.dir.join("fr.witness.jsonl");
        eventually("the coordinator witnesses the node's head", || {
            run_ok(
                command("fedq-coordinator")?
                    .args(["witness", "export", "--node", "fr", "--config"])
                    .arg(self.coordinator_toml())
                    .arg("--out")
                    .arg(&file),
            )?;
            let text = std::fs::read_to_string(&file)?;
            let last = text
                .lines()
                .last()
                .map(serde_json::from_str::<serde_json::Value>)
                .transpose()?;
            Ok((last.and_then(|l| l["seq"].as_u64()) == Some(head)).then_some(()))
        })?;
        Ok(file)
    }

    /// `fedq-node audit verify [--witness FILE]`: exit code and stderr.
    fn verify(&self, witness: Option<&Path>) -> anyhow::Result<(Option<i32>, String)> {
        let mut verify = command("fedq-node")?;
        verify
            .args(["audit", "verify", "--config"])
            .arg(self.node_toml());
        if let Some(file) = witness {
            verify.arg("--witness").arg(file);
        }
        let output = verify.output()?;
        Ok((output.status.code(), String::from_utf8(output.stderr)?))
    }

    /// Waits for the coordinator's alarm about node fr; returns its JSON.
    fn alarm(&self) -> anyhow::Result<serde_json::Value> {
        eventually("the coordinator raises an alarm", || {
            let output = command("fedq-coordinator")?
                .args(["witness", "alarms", "--node", "fr", "--config"])
                .arg(self.coordinator_toml())
                .output()?;
            match output.status.code() {
                Some(0) => Ok(None),
                Some(5) => {
                    let stdout = String::from_utf8(output.stdout)?;
                    let first = stdout.lines().next().context("an alarm line")?;
                    Ok(Some(serde_json::from_str(first)?))
                }
                other => anyhow::bail!("witness alarms exited {other:?}: {output:?}"),
            }
        })
    }

    /// The coordinator's own audit log holds the refusal, and still verifies.
    /// The operator's edit passes the node's own check; restarted, the node
    /// meets the witness, which raises an alarm of `kind`, returned.
    fn caught_after_restart(&mut self, kind: &str) -> anyhow::Result<serde_json::Value> {
        let (code, stderr) = self.verify(None)?;
        assert_eq!(
            code,
            Some(0),
            "on its own, the edited log verifies: {stderr}"
        );
        self.start_node()?;
        let alarm = self.alarm()?;
        assert_eq!(alarm["kind"], kind, "{alarm}");
        Ok(alarm)
    }

    fn assert_audited_refusal(&self, kind: &str) -> anyhow::Result<()> {
        let today = chrono::Utc::now().date_naive().to_string();
        let exported = run_ok(
            command("fedq-coordinator")?
                .args([
                    "audit", "export", "--since", &today, "--until", &today, "--config",
                ])
                .arg(self.coordinator_toml()),
        )?;
        let refused = exported
            .lines()
            .map(serde_json::from_str::<serde_json::Value>)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .any(|e| {
                e["action"] == "witness"
                    && e["decision"] == "refused"
                    && e["reason"].as_str().is_some_and(|r| r.starts_with(kind))
            });
        anyhow::ensure!(refused, "no audited {kind} refusal in {exported}");
        let log = std::fs::read_to_string(self.dir.join("coordinator.log"))?;
        anyhow::ensure!(
            log.contains("audit checkpoint was refused"),
            "no warning in the coordinator's log: {log}"
        );
        Ok(())
    }

    /// What the node operator does after rewriting the store: a checkpoint
    /// of (seq, hash) signed with the node's own key file, in the format
    /// `fedq-audit` documents.
    fn sign_checkpoint(&self, key: &AuditSigningKey, seq: u64, hash: &str) -> anyhow::Result<()> {
        let mut message = b"fedq-audit-checkpoint\0".to_vec();
        message.extend_from_slice(&1u32.to_be_bytes());
        message.extend_from_slice(&seq.to_be_bytes());
        message.extend_from_slice(&(hash.len() as u64).to_be_bytes());
        message.extend_from_slice(hash.as_bytes());
        let checkpoint = serde_json::json!({
            "version": "1",
            "seq": seq,
            "hash": hash,
            "public_key": key.public_key().to_hex(),
            "signature": hex(&key.sign(&message)),
        });
        std::fs::write(
            self.dir.join("nodes/fr/data/audit.checkpoint"),
            format!("{checkpoint}\n"),
        )?;
        Ok(())
    }

    fn node_key(&self) -> anyhow::Result<AuditSigningKey> {
        let text = std::fs::read_to_string(self.dir.join("nodes/fr/audit.key"))?;
        Ok(AuditSigningKey::from_file_text(&text)?)
    }

    /// The node's store, as its operator opens it: triggers dropped.
    fn store(&self) -> anyhow::Result<rusqlite::Connection> {
        let conn = rusqlite::Connection::open(self.dir.join("nodes/fr/data/node.db"))?;
        conn.execute_batch(
            "DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete;",
        )?;
        Ok(conn)
    }
}

/// `Node.Checkpoint` at node fr with the certificate `stem` (.pem/.key).
fn checkpoint_as(dir: &Path, stem: &str) -> anyhow::Result<Result<u64, tonic::Status>> {
    let tls = fedq_transport::TlsPaths {
        ca: dir.join("ca/ca.pem"),
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}.key")),
    };
    let address = listen_address(&dir.join("nodes/fr/node.toml"))?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("https://{address}"))?
            .tls_config(fedq_transport::tls::client_config(&tls, "fr")?)?
            .connect()
            .await?;
        let answer = fedq_proto::v1::node_client::NodeClient::new(channel)
            .checkpoint(fedq_proto::v1::NodeCheckpointRequest {})
            .await;
        Ok::<_, anyhow::Error>(answer.map(|answer| answer.into_inner().seq))
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_node_log_rolled_back_by_its_operator_is_caught_by_the_witness() -> anyhow::Result<()> {
    let mut federation = Federation::start()?;
    let witness = federation.witnessed_head()?;
    let (code, stderr) = federation.verify(Some(&witness))?;
    assert_eq!(
        code,
        Some(0),
        "an honest log holds what was witnessed: {stderr}"
    );
    // Only the coordinator's certificate may ask a node for its checkpoint.
    let head = federation.signed_seq()?;
    let coordinator = checkpoint_as(&federation.dir, "coordinator/tls/coordinator")?;
    assert_eq!(coordinator.ok(), Some(head));
    let requester = checkpoint_as(&federation.dir, "requesters/rosa/tls/requester")?;
    assert_eq!(
        requester.map_err(|s| s.code()),
        Err(tonic::Code::PermissionDenied)
    );

    // The operator drops the newest entry and signs the shorter head.
    federation.stop_node()?;
    let head = federation.signed_seq()?;
    let store = federation.store()?;
    let kept = head - 1;
    store.execute("DELETE FROM audit_log WHERE seq > ?1", [kept as i64])?;
    let hash: String = store.query_row(
        "SELECT hash FROM audit_log WHERE seq = ?1",
        [kept as i64],
        |r| r.get(0),
    )?;
    drop(store);
    federation.sign_checkpoint(&federation.node_key()?, kept, &hash)?;
    let alarm = federation.caught_after_restart("rollback")?;
    assert_eq!(
        (alarm["seq"].as_u64(), alarm["witnessed_seq"].as_u64()),
        (Some(kept), Some(head))
    );
    federation.assert_audited_refusal("rollback")?;

    let (code, stderr) = federation.verify(Some(&witness))?;
    assert_eq!(code, Some(5), "{stderr}");
    assert!(
        stderr.contains(&format!("rolled back: it ends at entry {kept}")),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn a_node_log_rewritten_and_re_signed_by_its_operator_is_caught_by_the_witness(
) -> anyhow::Result<()> {
    let mut federation = Federation::start()?;
    let witness = federation.witnessed_head()?;

    // The operator rewrites the first entry's purpose, re-hashes the chain,
    // re-signs every entry and the head with the node's key: same length,
    // consistent, signed, and different.
    federation.stop_node()?;
    let key = federation.node_key()?;
    let store = federation.store()?;
    let rows: Vec<(i64, fedq_audit::AuditEntry)> = {
        let node = fedq_node::NodeConfig::load(&federation.node_toml())?;
        let log = node.open_audit_read_only()?;
        log.entries_between(
            chrono::DateTime::<chrono::Utc>::MIN_UTC,
            chrono::DateTime::<chrono::Utc>::MAX_UTC,
        )?
        .into_iter()
        .map(|e| (e.seq as i64, e))
        .collect()
    };
    let mut prev = fedq_audit::GENESIS_HASH.to_owned();
    for (seq, entry) in &rows {
        let mut record = entry.record.clone();
        if *seq == 1 {
            record.purpose = "curiosity".to_owned();
        }
        let hash = fedq_audit::AuditEntry::compute_hash(entry.seq, &prev, &record);
        let mut message = b"fedq-audit-entry-signature\0".to_vec();
        message.extend_from_slice(&1u32.to_be_bytes());
        message.extend_from_slice(&entry.seq.to_be_bytes());
        message.extend_from_slice(&(hash.len() as u64).to_be_bytes());
        message.extend_from_slice(hash.as_bytes());
        store.execute(
            "UPDATE audit_log SET purpose = ?1, prev_hash = ?2, hash = ?3, signature = ?4 WHERE seq = ?5",
            rusqlite::params![record.purpose, prev, hash, hex(&key.sign(&message)), seq],
        )?;
        prev = hash;
    }
    drop(store);
    let head = federation.signed_seq()?;
    anyhow::ensure!(
        rows.last().map(|(seq, _)| *seq as u64) == Some(head),
        "the head is the last entry"
    );
    federation.sign_checkpoint(&key, head, &prev)?;
    let alarm = federation.caught_after_restart("fork")?;
    assert_eq!(alarm["seq"].as_u64(), Some(head), "{alarm}");
    federation.assert_audited_refusal("fork")?;

    let (code, stderr) = federation.verify(Some(&witness))?;
    assert_eq!(code, Some(5), "{stderr}");
    assert!(stderr.contains("forked"), "{stderr}");
    Ok(())
}
