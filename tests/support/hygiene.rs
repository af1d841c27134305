//! Secret hygiene for the whole e2e suite: every test binary captures the operator's logs (debug
//! level) in memory, and each harness checks at the end that no secret value the simulators
//! issued appears in those logs, in the namespace's events, or in any resource's status.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

/// Where captured log lines go (a `MakeWriter` through `move || capture.clone()`).
#[derive(Clone)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (once per test binary).
pub fn capture_logs() {
    capture_logs_with(|writer| {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("connect_email_operator=debug,kube=debug"))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish()
            .into()
    });
}

/// As [`capture_logs`], with the subscriber `build` makes around the capture (a test binary that
/// needs other layers calls this before any harness starts).
pub fn capture_logs_with(build: impl FnOnce(Capture) -> tracing::Dispatch) {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let _ = tracing::dispatcher::set_global_default(build(Capture(buffer.clone())));
        buffer
    });
}

/// Everything logged so far in this test binary.
pub fn logs() -> String {
    LOGS.get().map(|b| String::from_utf8_lossy(&b.lock().unwrap()).into_owned()).unwrap_or_default()
}

/// Panics naming where a secret leaked (never the secret itself).
///
/// The same as `text.contains(secret)` for every secret, in one pass over each text per distinct
/// secret length (a rolling hash over every window, confirmed byte by byte): a long load run has
/// tens of thousands of issued tokens and hundreds of megabytes of debug logs, too many for one
/// scan per secret.
pub fn assert_no_secret_in(secrets: &[String], places: &[(&str, String)]) {
    use std::collections::{BTreeMap, HashMap};
    const BASE: u64 = 1_000_003;
    fn hash(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0u64, |h, b| h.wrapping_mul(BASE).wrapping_add(u64::from(*b)))
    }
    let mut by_length: BTreeMap<usize, HashMap<u64, Vec<usize>>> = BTreeMap::new();
    for (i, secret) in secrets.iter().enumerate() {
        if secret.is_empty() {
            continue;
        }
        by_length.entry(secret.len()).or_default().entry(hash(secret.as_bytes())).or_default().push(i);
    }
    // A bitmap of the hashes' top bits in front of the map: most windows are rejected by one
    // array read (this runs unoptimised, in the test binaries).
    const BITS: u32 = 24;
    let filters: BTreeMap<usize, Vec<u64>> = by_length
        .iter()
        .map(|(&len, hashes)| {
            let mut bits = vec![0u64; 1 << (BITS - 6)];
            for h in hashes.keys() {
                let i = (h >> (64 - BITS)) as usize;
                bits[i >> 6] |= 1 << (i & 63);
            }
            (len, bits)
        })
        .collect();
    for (place, text) in places {
        let text = text.as_bytes();
        for (&len, hashes) in &by_length {
            let bits = &filters[&len];
            if text.len() < len {
                continue;
            }
            // BASE^(len-1), to take the leaving byte out of the window's hash.
            let top = (1..len).fold(1u64, |p, _| p.wrapping_mul(BASE));
            let mut h = hash(&text[..len]);
            for start in 0..=text.len() - len {
                if start > 0 {
                    h = h
                        .wrapping_sub(u64::from(text[start - 1]).wrapping_mul(top))
                        .wrapping_mul(BASE)
                        .wrapping_add(u64::from(text[start + len - 1]));
                }
                let i = (h >> (64 - BITS)) as usize;
                if bits[i >> 6] & (1 << (i & 63)) == 0 {
                    continue;
                }
                if let Some(candidates) = hashes.get(&h) {
                    for &i in candidates {
                        assert!(
                            text[start..start + len] != *secrets[i].as_bytes(),
                            "issued secret #{i} appears in {place}"
                        );
                    }
                }
            }
        }
    }
}
