//! Passwords: the rules a new one must meet, and argon2id hashing and
//! verification on a pool of lower-priority threads of their own.

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{self, Output, ParamsString, SaltString},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{AppError, AppResult};

pub const MIN_PASSWORD_LEN: usize = 12;
/// Bounds the cost of hashing whatever a client sends.
pub const MAX_PASSWORD_LEN: usize = 256;

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
/// buffer per thread kept one for every thread that ever hashed. Hashes
/// run on the threads of a [`PasswordHasherPool`] (half the cores at most),
/// one at a time on each, so this holds at most as many buffers as hashes
/// ever ran at once: one per hashing thread.
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
