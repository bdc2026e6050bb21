//! What the engine benchmarks share: a small runtime, and fresh state files holding one
//! deployment (named `bench`) of a compiled blueprint, in a scratch directory removed on drop.

use std::path::PathBuf;

use windlass::blueprint::Blueprint;
use windlass::store::Store;

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[allow(dead_code)] // benches/shapes.rs makes its own state files
pub struct Scratch {
    dir: PathBuf,
    next: usize,
}

#[allow(dead_code)]
impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("windlass-bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch { dir, next: 0 }
    }

    /// A new state file with the deployment `bench` created (nothing run yet).
    pub fn deployment(&mut self, rt: &tokio::runtime::Runtime, bp: &Blueprint) -> Store {
        self.next += 1;
        let path = self.dir.join(format!("state-{}.db", self.next));
        rt.block_on(async {
            let store = Store::open(path.to_str().unwrap()).await.unwrap();
            store
                .create_deployment(
                    "bench",
                    "bench.yaml",
                    &serde_json::json!({}),
                    &bp.compiled,
                    std::future::ready(serde_json::to_string(&bp.compiled).unwrap()),
                    &bp.plan,
                    &[],
                    &[],
                )
                .await
                .unwrap();
            store
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
