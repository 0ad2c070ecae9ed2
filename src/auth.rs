//! Credentials: bearer tokens, password hashes, and the caller of a request.

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{self, Output, ParamsString, SaltString},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use entity::{session, user};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex, PoisonError};
use uuid::Uuid;

use crate::error::{AppError, AppResult, BAD_TOKEN};

/// Fixed prefix of every token, so secret scanners can spot a leaked one.
pub const TOKEN_PREFIX: &str = "smt_";
/// Random bytes in a token (from the OS CSPRNG).
const TOKEN_BYTES: usize = 32;
/// Length of a well-formed token: the prefix and 43 base64url characters.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 43;
/// How many characters of a token are kept for display.
pub const DISPLAY_PREFIX_LEN: usize = 8;

pub const MIN_PASSWORD_LEN: usize = 12;
/// Bounds the cost of hashing whatever a client sends.
pub const MAX_PASSWORD_LEN: usize = 256;

/// A freshly made token: the plaintext goes to the client once, the rest to
/// the database.
pub struct NewToken {
    pub plaintext: String,
    pub hash: String,
    pub display_prefix: String,
}

pub fn generate_token() -> AppResult<NewToken> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| AppError::internal(anyhow::anyhow!("OS random source failed: {e}")))?;
    let plaintext = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    Ok(NewToken {
        hash: hash_token(&plaintext),
        display_prefix: plaintext[..DISPLAY_PREFIX_LEN].to_owned(),
        plaintext,
    })
}

/// SHA-256 of the token, hex. Tokens carry 256 bits of entropy, so a fast
/// hash is enough; what matters is that the database never holds a usable
/// token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Checks the shape of a token before any database work.
pub fn is_well_formed_token(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token.starts_with(TOKEN_PREFIX)
        && token[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Extracts the token from an `Authorization` header value. Anything other
/// than `Bearer <well-formed token>` is refused: a client that sends a
/// header means to be someone, and must not silently become anonymous.
pub fn bearer_token(header: &[u8]) -> AppResult<&str> {
    let value = std::str::from_utf8(header).map_err(|_| AppError::Unauthenticated(BAD_TOKEN))?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(AppError::Unauthenticated(BAD_TOKEN))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || !is_well_formed_token(token) {
        return Err(AppError::Unauthenticated(BAD_TOKEN));
    }
    Ok(token)
}

/// The display form of a token: its first characters and an ellipsis.
pub fn mask_token(display_prefix: &str) -> String {
    format!("{display_prefix}…")
}

/// Hashes and verifies passwords with argon2id on threads of their own:
/// half the cores at most, so a burst of sign-ins leaves the other half to
/// every other request, and at a lower scheduling priority (Linux: nice
/// [`HASHING_NICENESS`]), so that when the machine is busy a hash waits
/// rather than the requests that cost microseconds. (Measured with the
/// W5 benchmark: at equal priority one hashing thread took a whole core of
/// two and doubled the p99 of the requests alongside.)
#[derive(Clone)]
pub struct PasswordHasherPool {
    jobs: std::sync::mpsc::SyncSender<HashJob>,
    /// Verified against when the email is unknown, so both failures take
    /// about the same time.
    dummy_hash: Arc<String>,
}

type HashJob = Box<dyn FnOnce() + Send>;

/// Added to the hashing threads' niceness (0 is normal, 19 the lowest).
pub const HASHING_NICENESS: i32 = 10;
/// Hashes waiting for a thread before `hash`/`verify` wait to queue.
const QUEUE: usize = 256;

impl PasswordHasherPool {
    pub fn new() -> AppResult<Self> {
        let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut filler = [0u8; 24];
        getrandom::fill(&mut filler)
            .map_err(|e| AppError::internal(anyhow::anyhow!("OS random source failed: {e}")))?;
        let dummy = hash_password_blocking(&URL_SAFE_NO_PAD.encode(filler))?;
        let (jobs, queue) = std::sync::mpsc::sync_channel::<HashJob>(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..(parallelism / 2).max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    lower_priority();
                    // Ends when the last pool handle is dropped.
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(AppError::internal)?;
        }
        Ok(Self {
            jobs,
            dummy_hash: Arc::new(dummy),
        })
    }

    /// Runs `work` on a hashing thread. Skipped if the caller has gone by
    /// the time a thread is free for it.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> AppResult<T> + Send + 'static,
    ) -> AppResult<T> {
        let (reply, result) = tokio::sync::oneshot::channel();
        let job: HashJob = Box::new(move || {
            if !reply.is_closed() {
                let _ = reply.send(work());
            }
        });
        let stopped = || AppError::internal(anyhow::anyhow!("the hashing threads have stopped"));
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(job)) => {
                // Waiting for room in the queue must not block the runtime.
                let jobs = self.jobs.clone();
                tokio::task::spawn_blocking(move || jobs.send(job))
                    .await
                    .map_err(AppError::internal)?
                    .map_err(|_| stopped())?;
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Err(stopped()),
        }
        result
            .await
            .map_err(|_| AppError::internal(anyhow::anyhow!("a hashing thread dropped a job")))?
    }

    pub async fn hash(&self, password: String) -> AppResult<String> {
        self.run(move || hash_password_blocking(&password)).await
    }

    /// Verifies `password` against `hash`, or against a dummy hash when
    /// there is no account, always spending the same work.
    pub async fn verify(&self, password: String, hash: Option<String>) -> AppResult<bool> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        let ok = self
            .run(move || verify_password_blocking(&password, &hash))
            .await?;
        Ok(ok && known)
    }
}

/// Makes the calling thread yield to normal-priority work (Linux; a no-op
/// elsewhere). Failure only costs the priority, so it is logged, not fatal.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let thread = rustix::thread::gettid();
        let current = rustix::process::getpriority_process(Some(thread)).unwrap_or(0);
        if let Err(err) =
            rustix::process::setpriority_process(Some(thread), (current + HASHING_NICENESS).min(19))
        {
            tracing::warn!(error = %err, "cannot lower the priority of a hashing thread");
        }
    }
}

fn hash_password_blocking(password: &str) -> AppResult<String> {
    let mut salt_bytes = [0u8; 16];
    getrandom::fill(&mut salt_bytes)
        .map_err(|e| AppError::internal(anyhow::anyhow!("OS random source failed: {e}")))?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(hashing_failed)?;
    let params = Params::DEFAULT;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let output = argon2_with_reused_memory(
        &argon,
        &params,
        password,
        &salt_bytes,
        Params::DEFAULT_OUTPUT_LEN,
    )?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(hashing_failed)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

fn verify_password_blocking(password: &str, hash: &str) -> AppResult<bool> {
    let unreadable = |e: password_hash::Error| {
        AppError::internal(anyhow::anyhow!("stored password hash is unreadable: {e}"))
    };
    let parsed = PasswordHash::new(hash).map_err(unreadable)?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(unreadable)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| unreadable(e.into()))?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(unreadable)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(unreadable(password_hash::Error::PhcStringField));
    };
    let mut salt_buffer = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buffer).map_err(unreadable)?;
    let argon = Argon2::new(algorithm, version, params.clone());
    let output = argon2_with_reused_memory(&argon, &params, password, salt_bytes, expected.len())?;
    // `Output` compares in constant time.
    Ok(output == expected)
}

/// Argon2's working memory (19 MiB with the default parameters), handed
/// from one check to the next. Allocating it afresh for every check made
/// glibc keep hundreds of megabytes of freed buffers resident under
/// sign-in load (measured: 250-380 MB peak RSS in the W5 benchmark), and a
/// buffer per thread kept one for every thread that ever hashed. Hashing
/// runs at most `permits` at a time, so this holds at most that many.
static ARGON2_MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

fn argon2_with_reused_memory(
    argon: &Argon2<'_>,
    params: &Params,
    password: &str,
    salt: &[u8],
    output_len: usize,
) -> AppResult<Output> {
    let stash = || ARGON2_MEMORY.lock().unwrap_or_else(PoisonError::into_inner);
    let mut memory = stash().pop().unwrap_or_default();
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let output = Output::init_with(output_len, |out| {
        Ok(argon.hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            out,
            &mut memory[..blocks],
        )?)
    })
    .map_err(hashing_failed);
    // A hash stored with costlier parameters than ours does not get to
    // keep its larger buffer.
    if memory.len() <= Params::DEFAULT.block_count() {
        stash().push(memory);
    }
    output
}

fn hashing_failed(e: password_hash::Error) -> AppError {
    AppError::internal(anyhow::anyhow!("password hashing failed: {e}"))
}

/// Checks the password rules; the message says which one failed.
pub fn validate_new_password(field: &'static str, password: &str) -> AppResult<()> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        return Err(AppError::bad_input(
            field,
            format!("password must be at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    if chars > MAX_PASSWORD_LEN {
        return Err(AppError::bad_input(
            field,
            format!("password must be at most {MAX_PASSWORD_LEN} characters"),
        ));
    }
    if password.trim().is_empty() {
        return Err(AppError::bad_input(field, "password must not be blank"));
    }
    Ok(())
}

/// Where a request came from, for sessions and audit events.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

/// The authenticated caller: the session's user (the subject) and, for an
/// impersonation session, the admin behind it (the actor).
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: user::Model,
    pub session: session::Model,
}

/// Who did something, for the audit log: the account acting and, when it
/// acts through impersonation, the admin behind it (who is then the actor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub id: Uuid,
    pub impersonated_by: Option<Uuid>,
}

impl Actor {
    /// A user acting as themselves.
    pub fn user(id: Uuid) -> Self {
        Self {
            id,
            impersonated_by: None,
        }
    }
}

impl Caller {
    /// Who is really acting: the impersonator when there is one.
    pub fn actor_id(&self) -> Uuid {
        self.session.impersonator_id.unwrap_or(self.user.id)
    }

    pub fn actor(&self) -> Actor {
        Actor {
            id: self.actor_id(),
            impersonated_by: self.session.impersonator_id,
        }
    }

    pub fn is_impersonation(&self) -> bool {
        self.session.impersonator_id.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_pool_hashes_and_verifies_on_its_own_lower_priority_threads() {
        let pool = PasswordHasherPool::new().unwrap();
        let hash = pool.hash("correct horse".into()).await.unwrap();
        let checks = (0..4).map(|i| {
            let pool = pool.clone();
            let hash = hash.clone();
            async move {
                let password = if i % 2 == 0 { "correct horse" } else { "wrong" };
                pool.verify(password.into(), Some(hash)).await.unwrap()
            }
        });
        let results = futures_util::future::join_all(checks).await;
        assert_eq!(results, [true, false, true, false]);
        assert!(
            !pool.verify("correct horse".into(), None).await.unwrap(),
            "no account never verifies"
        );

        #[cfg(target_os = "linux")]
        {
            // /proc/self/task/<tid>/stat: "(comm)" then fields; nice is the
            // 19th field overall, the 17th after the closing parenthesis.
            let nice_of_hashers: Vec<i32> = std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("stat")).ok())
                .filter(|stat| stat.contains("(argon2-"))
                .filter_map(|stat| {
                    let after = stat.rsplit_once(')')?.1;
                    after.split_whitespace().nth(16)?.parse().ok()
                })
                .collect();
            assert!(!nice_of_hashers.is_empty(), "hashing threads exist");
            assert!(
                nice_of_hashers.iter().all(|&nice| nice >= HASHING_NICENESS),
                "hashing threads run at a lower priority: {nice_of_hashers:?}"
            );
        }
    }

    #[test]
    fn generated_tokens_are_well_formed_unique_and_hashed() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert!(is_well_formed_token(&a.plaintext), "{}", a.plaintext);
        assert_ne!(a.plaintext, b.plaintext);
        assert_eq!(a.hash, hash_token(&a.plaintext));
        assert_eq!(a.hash.len(), 64);
        assert!(!a.hash.contains(&a.plaintext[TOKEN_PREFIX.len()..]));
        assert_eq!(a.display_prefix, &a.plaintext[..8]);
    }

    #[test]
    fn bearer_header_accepts_only_a_well_formed_bearer_token() {
        let token = generate_token().unwrap().plaintext;
        assert_eq!(
            bearer_token(format!("Bearer {token}").as_bytes()).unwrap(),
            token
        );
        assert_eq!(
            bearer_token(format!("bearer  {token} ").as_bytes()).unwrap(),
            token
        );
        let bad = [
            (String::new(), "empty"),
            ("Bearer".to_owned(), "no token"),
            ("Bearer ".to_owned(), "empty token"),
            (format!("Basic {token}"), "wrong scheme"),
            (token.clone(), "no scheme"),
            (format!("Bearer {}", &token[..TOKEN_LEN - 1]), "truncated"),
            (format!("Bearer {token}x"), "too long"),
            (
                format!("Bearer {}", token.replacen("smt_", "xyz_", 1)),
                "wrong prefix",
            ),
            (
                format!("Bearer {}=", &token[..TOKEN_LEN - 1]),
                "bad character",
            ),
        ];
        for (header, why) in bad {
            assert!(
                bearer_token(header.as_bytes()).is_err(),
                "{why}: {header:?}"
            );
        }
        assert!(bearer_token(b"Bearer \xff\xfe").is_err(), "non-UTF-8");
    }

    #[test]
    fn hashes_are_standard_argon2id_and_verify() {
        let hash = hash_password_blocking("correct horse battery").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password_blocking("correct horse battery", &hash).unwrap());
        assert!(!verify_password_blocking("correct horse batterY", &hash).unwrap());
        // Interoperable with the argon2 crate's own verifier, both ways.
        use argon2::{PasswordHasher, PasswordVerifier};
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = Argon2::default()
            .hash_password(b"another password", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password_blocking("another password", &theirs).unwrap());
        assert!(verify_password_blocking("x", "not a hash").is_err());
    }

    #[test]
    fn password_rules_name_the_bound() {
        assert!(validate_new_password("password", "correct horse battery").is_ok());
        let short = validate_new_password("password", "short").unwrap_err();
        assert!(short.to_string().contains("at least 12"), "{short}");
        let long =
            validate_new_password("password", &"x".repeat(MAX_PASSWORD_LEN + 1)).unwrap_err();
        assert!(long.to_string().contains("at most"), "{long}");
        assert!(validate_new_password("password", &" ".repeat(20)).is_err());
    }
}
