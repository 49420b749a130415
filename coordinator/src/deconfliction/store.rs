//! Registrations and alerts in the coordinator's store. Every change is one
//! write transaction: the store's only writer on either engine, so two
//! registrations of one target at the same moment still see each other.

use fedq_db::{Db, DbError, Exec, Location, Row, Schema};

use super::{DeconflictionError, Limits};

const SCHEMA: Schema = Schema {
    sqlite: "CREATE TABLE IF NOT EXISTS deconfliction_registrations (
        id TEXT PRIMARY KEY,
        requester TEXT NOT NULL,
        agency TEXT NOT NULL,
        pseudonym BLOB NOT NULL,
        sealed_contact BLOB NOT NULL,
        wrapped_key BLOB NOT NULL,
        registered_at INTEGER NOT NULL,
        until INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS deconfliction_by_pseudonym
        ON deconfliction_registrations (pseudonym);
    CREATE TABLE IF NOT EXISTS deconfliction_alerts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        requester TEXT NOT NULL,
        registration TEXT NOT NULL,
        other_registration TEXT NOT NULL,
        other_agency TEXT NOT NULL,
        other_sealed_contact BLOB NOT NULL,
        other_until INTEGER NOT NULL,
        raised_at INTEGER NOT NULL,
        until INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS deconfliction_alerts_by_requester
        ON deconfliction_alerts (requester, id);
    CREATE INDEX IF NOT EXISTS deconfliction_alerts_by_registration
        ON deconfliction_alerts (registration);
    CREATE INDEX IF NOT EXISTS deconfliction_alerts_by_other
        ON deconfliction_alerts (other_registration);
    CREATE TABLE IF NOT EXISTS deconfliction_nonces (
        requester TEXT NOT NULL,
        nonce TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (requester, nonce)
    );",
    postgres: "CREATE TABLE IF NOT EXISTS deconfliction_registrations (
        id TEXT PRIMARY KEY,
        requester TEXT NOT NULL,
        agency TEXT NOT NULL,
        pseudonym BYTEA NOT NULL,
        sealed_contact BYTEA NOT NULL,
        wrapped_key BYTEA NOT NULL,
        registered_at BIGINT NOT NULL,
        until BIGINT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS deconfliction_by_pseudonym
        ON deconfliction_registrations (pseudonym);
    CREATE TABLE IF NOT EXISTS deconfliction_alerts (
        id BIGSERIAL PRIMARY KEY,
        requester TEXT NOT NULL,
        registration TEXT NOT NULL,
        other_registration TEXT NOT NULL,
        other_agency TEXT NOT NULL,
        other_sealed_contact BYTEA NOT NULL,
        other_until BIGINT NOT NULL,
        raised_at BIGINT NOT NULL,
        until BIGINT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS deconfliction_alerts_by_requester
        ON deconfliction_alerts (requester, id);
    CREATE INDEX IF NOT EXISTS deconfliction_alerts_by_registration
        ON deconfliction_alerts (registration);
    CREATE INDEX IF NOT EXISTS deconfliction_alerts_by_other
        ON deconfliction_alerts (other_registration);
    CREATE TABLE IF NOT EXISTS deconfliction_nonces (
        requester TEXT NOT NULL,
        nonce TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (requester, nonce)
    );",
};

/// Most registrations of other agencies one registration is matched with
/// (the oldest first): each match raises two alerts in the registering
/// transaction, so this bounds its work and the alerts a requester can be
/// sent for one target.
pub const MAX_MATCHES: usize = 100;
/// Most alerts one call returns; a follower or `--after` pages on.
pub const MAX_ALERTS_PER_CALL: usize = 500;

/// A registration as the requester asked for it (already checked for size).
#[derive(Debug, Clone)]
pub struct NewRegistration {
    /// Who registers (its certificate's name).
    pub requester: String,
    /// Its agency, as the federation file lists it.
    pub agency: String,
    /// The target's pseudonym.
    pub pseudonym: [u8; 32],
    /// Contact and case reference, sealed.
    pub sealed_contact: Vec<u8>,
    /// The target's key, wrapped for the requester.
    pub wrapped_key: Vec<u8>,
    /// End, Unix seconds.
    pub until: i64,
    /// The signed envelope's nonce, refused if seen before (cancelling the
    /// registration does not free it).
    pub nonce: String,
    /// When the nonce may be forgotten: after this the envelope's time is
    /// stale anyway.
    pub nonce_expires_at: i64,
}

/// A live registration, as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Random id.
    pub id: String,
    /// The owner's agency.
    pub agency: String,
    /// Unix seconds.
    pub registered_at: i64,
    /// Unix seconds.
    pub until: i64,
    /// Alerts it raised for its owner (registrations of other agencies).
    pub matches: u32,
}

/// One alert for one requester.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecord {
    /// Increasing id (a follower's cursor).
    pub id: u64,
    /// The recipient.
    pub requester: String,
    /// The recipient's registration.
    pub registration: String,
    /// The recipient's wrapped key of it.
    pub wrapped_key: Vec<u8>,
    /// The other agency and its registration.
    pub other_agency: String,
    /// Its registration id.
    pub other_registration: String,
    /// Its sealed contact.
    pub other_sealed_contact: Vec<u8>,
    /// Its end, Unix seconds (bound into the seal).
    pub other_until: i64,
    /// Unix seconds.
    pub raised_at: i64,
}

/// The coordinator's deconfliction tables.
pub struct DeconflictionStore {
    db: Db,
}

impl DeconflictionStore {
    /// Opens (creating the tables) in the coordinator's store.
    pub fn open(store: &Location) -> Result<Self, DbError> {
        crate::watch::create_sequence(store)?;
        Ok(Self {
            db: Db::open_with_schema(store, &SCHEMA)?,
        })
    }

    /// Records `new` at time `now` and raises an alert for both sides of
    /// every live registration of another agency with the same pseudonym.
    /// Returns the registration and the alerts raised.
    pub fn register(
        &self,
        new: &NewRegistration,
        now: i64,
        limits: &Limits,
    ) -> Result<(Registration, Vec<AlertRecord>), DeconflictionError> {
        self.db.write(|exec| {
            purge(exec, now)?;
            let live: i64 = exec.query_one(
                "SELECT COUNT(*) FROM deconfliction_registrations WHERE requester = ?1",
                &[&new.requester.as_str()],
                |r| r.get(0),
            )?;
            if live >= i64::from(limits.max_live_per_requester) {
                return Err(DeconflictionError::TooMany(limits.max_live_per_requester));
            }
            let fresh = exec.execute(
                "INSERT INTO deconfliction_nonces (requester, nonce, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (requester, nonce) DO NOTHING",
                &[
                    &new.requester.as_str(),
                    &new.nonce.as_str(),
                    &new.nonce_expires_at,
                ],
            )?;
            if fresh == 0 {
                return Err(DeconflictionError::Invalid(
                    "replayed registration (this envelope was used before)".to_owned(),
                ));
            }
            let pseudonym = new.pseudonym.as_slice();
            let already: Option<String> = exec.query_opt(
                "SELECT id FROM deconfliction_registrations WHERE requester = ?1 AND pseudonym = ?2",
                &[&new.requester.as_str(), &pseudonym],
                |r| r.get(0),
            )?;
            if let Some(id) = already {
                return Err(DeconflictionError::Invalid(format!(
                    "you registered this target already (registration {id}); cancel it to register again"
                )));
            }
            let id = format!("{:016x}", rand::random::<u64>());
            let others = exec.query_all(
                &format!(
                    "SELECT id, requester, agency, sealed_contact, wrapped_key, until
                     FROM deconfliction_registrations WHERE pseudonym = ?1 AND agency <> ?2
                     ORDER BY registered_at, id LIMIT {MAX_MATCHES}"
                ),
                &[&pseudonym, &new.agency.as_str()],
                |r| {
                    Ok(Other {
                        id: r.get(0)?,
                        requester: r.get(1)?,
                        agency: r.get(2)?,
                        sealed_contact: r.get(3)?,
                        wrapped_key: r.get(4)?,
                        until: r.get(5)?,
                    })
                },
            )?;
            exec.execute(
                "INSERT INTO deconfliction_registrations
                 (id, requester, agency, pseudonym, sealed_contact, wrapped_key, registered_at, until)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                &[
                    &id.as_str(),
                    &new.requester.as_str(),
                    &new.agency.as_str(),
                    &pseudonym,
                    &new.sealed_contact.as_slice(),
                    &new.wrapped_key.as_slice(),
                    &now,
                    &new.until,
                ],
            )?;
            let mut alerts = Vec::with_capacity(2 * others.len());
            for other in &others {
                // Both alerts end with the shorter of the two registrations.
                let until = other.until.min(new.until);
                alerts.push(raise(
                    exec,
                    Side {
                        requester: &new.requester,
                        registration: &id,
                        wrapped_key: &new.wrapped_key,
                    },
                    other.as_counterpart(),
                    now,
                    until,
                )?);
                alerts.push(raise(
                    exec,
                    Side {
                        requester: &other.requester,
                        registration: &other.id,
                        wrapped_key: &other.wrapped_key,
                    },
                    Counterpart {
                        registration: &id,
                        agency: &new.agency,
                        sealed_contact: &new.sealed_contact,
                        until: new.until,
                    },
                    now,
                    until,
                )?);
            }
            let registration = Registration {
                id,
                agency: new.agency.clone(),
                registered_at: now,
                until: new.until,
                matches: u32::try_from(others.len()).unwrap_or(u32::MAX),
            };
            Ok((registration, alerts))
        })
    }

    /// The requester's live registrations, oldest first.
    pub fn list(&self, requester: &str, now: i64) -> Result<Vec<Registration>, DeconflictionError> {
        self.db.write(|exec| {
            purge(exec, now)?;
            Ok(exec.query_all(
                "SELECT r.id, r.agency, r.registered_at, r.until,
                        (SELECT COUNT(*) FROM deconfliction_alerts a
                         WHERE a.requester = r.requester AND a.registration = r.id)
                 FROM deconfliction_registrations r WHERE r.requester = ?1
                 ORDER BY r.registered_at, r.id",
                &[&requester],
                |r| {
                    Ok(Registration {
                        id: r.get(0)?,
                        agency: r.get(1)?,
                        registered_at: r.get(2)?,
                        until: r.get(3)?,
                        matches: u32::try_from(r.get::<i64>(4)?).unwrap_or(u32::MAX),
                    })
                },
            )?)
        })
    }

    /// Deletes the requester's registration `id` and every alert that names
    /// it, on either side (with the sealed contacts they carry).
    pub fn cancel(&self, requester: &str, id: &str, now: i64) -> Result<(), DeconflictionError> {
        self.db.write(|exec| {
            purge(exec, now)?;
            let deleted = exec.execute(
                "DELETE FROM deconfliction_registrations WHERE id = ?1 AND requester = ?2",
                &[&id, &requester],
            )?;
            if deleted == 0 {
                return Err(DeconflictionError::NotFound(id.to_owned()));
            }
            exec.execute(
                "DELETE FROM deconfliction_alerts WHERE registration = ?1 OR other_registration = ?1",
                &[&id],
            )?;
            Ok(())
        })
    }

    /// The requester's live alerts with an id above `after`, in order.
    pub fn alerts(
        &self,
        requester: &str,
        after: u64,
        now: i64,
    ) -> Result<Vec<AlertRecord>, DeconflictionError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        Ok(self.db.run(|exec| {
            exec.query_all(
                &format!(
                    "SELECT a.id, a.requester, a.registration, r.wrapped_key, a.other_agency,
                            a.other_registration, a.other_sealed_contact, a.other_until, a.raised_at
                     FROM deconfliction_alerts a
                     JOIN deconfliction_registrations r ON r.id = a.registration
                     WHERE a.requester = ?1 AND a.id > ?2 AND a.until >= ?3
                     ORDER BY a.id LIMIT {MAX_ALERTS_PER_CALL}"
                ),
                &[&requester, &after, &now],
                alert_of_row,
            )
        })?)
    }

    /// Deletes what has expired, and everything of requesters that are no
    /// longer listed (`listed` says whether one is).
    pub fn purge(&self, now: i64, listed: impl Fn(&str) -> bool) -> Result<(), DeconflictionError> {
        self.db.write(|exec| {
            purge(exec, now)?;
            let requesters: Vec<String> = exec.query_all(
                "SELECT DISTINCT requester FROM deconfliction_registrations",
                &[],
                |r| r.get(0),
            )?;
            for gone in requesters.iter().filter(|r| !listed(r)) {
                exec.execute(
                    "DELETE FROM deconfliction_alerts WHERE registration IN
                     (SELECT id FROM deconfliction_registrations WHERE requester = ?1)
                     OR other_registration IN
                     (SELECT id FROM deconfliction_registrations WHERE requester = ?1)",
                    &[&gone.as_str()],
                )?;
                exec.execute(
                    "DELETE FROM deconfliction_registrations WHERE requester = ?1",
                    &[&gone.as_str()],
                )?;
            }
            Ok(())
        })
    }

    /// Rows left for a pseudonym, expired or not: what a test checks is gone.
    #[cfg(test)]
    pub(crate) fn rows_naming(&self, pseudonym: &[u8; 32]) -> Result<i64, DbError> {
        self.db.run(|exec| {
            exec.query_one(
                "SELECT COUNT(*) FROM deconfliction_registrations WHERE pseudonym = ?1",
                &[&pseudonym.as_slice()],
                |r| r.get(0),
            )
        })
    }
}

/// A live registration of another agency with the same pseudonym.
struct Other {
    id: String,
    requester: String,
    agency: String,
    sealed_contact: Vec<u8>,
    wrapped_key: Vec<u8>,
    until: i64,
}

impl Other {
    fn as_counterpart(&self) -> Counterpart<'_> {
        Counterpart {
            registration: &self.id,
            agency: &self.agency,
            sealed_contact: &self.sealed_contact,
            until: self.until,
        }
    }
}

/// The side an alert is for.
struct Side<'a> {
    requester: &'a str,
    registration: &'a str,
    wrapped_key: &'a [u8],
}

/// The side an alert tells about.
struct Counterpart<'a> {
    registration: &'a str,
    agency: &'a str,
    sealed_contact: &'a [u8],
    until: i64,
}

fn raise(
    exec: &mut dyn Exec,
    to: Side<'_>,
    about: Counterpart<'_>,
    now: i64,
    until: i64,
) -> Result<AlertRecord, DbError> {
    // One sequence for every kind of alert: a follower's one cursor.
    let id = crate::watch::next_alert_id(exec)?;
    exec.execute(
        "INSERT INTO deconfliction_alerts
         (id, requester, registration, other_registration, other_agency, other_sealed_contact,
          other_until, raised_at, until)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        &[
            &id,
            &to.requester,
            &to.registration,
            &about.registration,
            &about.agency,
            &about.sealed_contact,
            &about.until,
            &now,
            &until,
        ],
    )?;
    Ok(AlertRecord {
        id: u64::try_from(id).unwrap_or_default(),
        requester: to.requester.to_owned(),
        registration: to.registration.to_owned(),
        wrapped_key: to.wrapped_key.to_vec(),
        other_agency: about.agency.to_owned(),
        other_registration: about.registration.to_owned(),
        other_sealed_contact: about.sealed_contact.to_vec(),
        other_until: about.until,
        raised_at: now,
    })
}

fn alert_of_row(r: &Row<'_>) -> Result<AlertRecord, DbError> {
    Ok(AlertRecord {
        id: u64::try_from(r.get::<i64>(0)?).unwrap_or_default(),
        requester: r.get(1)?,
        registration: r.get(2)?,
        wrapped_key: r.get(3)?,
        other_agency: r.get(4)?,
        other_registration: r.get(5)?,
        other_sealed_contact: r.get(6)?,
        other_until: r.get(7)?,
        raised_at: r.get(8)?,
    })
}

/// Expired registrations go with every alert that names them; expired
/// alerts go too.
fn purge(exec: &mut dyn Exec, now: i64) -> Result<(), DeconflictionError> {
    exec.execute(
        "DELETE FROM deconfliction_alerts WHERE until < ?1
         OR registration IN (SELECT id FROM deconfliction_registrations WHERE until < ?1)
         OR other_registration IN (SELECT id FROM deconfliction_registrations WHERE until < ?1)",
        &[&now],
    )?;
    exec.execute(
        "DELETE FROM deconfliction_registrations WHERE until < ?1",
        &[&now],
    )?;
    exec.execute(
        "DELETE FROM deconfliction_nonces WHERE expires_at < ?1",
        &[&now],
    )?;
    Ok(())
}
