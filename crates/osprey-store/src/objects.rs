//! Where blocks are kept: one code path for a local directory and for S3, GCS or Azure buckets, through
//! the `object_store` crate. Paths are `<prefix>/<tenant>/blocks/<block id>/<file>`.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use prometheus_client::metrics::counter::Counter;

/// The files of one block.
pub const DATA_FILE: &str = "data.parquet";
pub const INDEX_FILE: &str = "trace-index";
pub const META_FILE: &str = "meta.json";

pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// For a local directory: its path, so writes can be fsynced (object_store's local store renames
    /// into place but does not sync).
    local_root: Option<PathBuf>,
    /// What `--storage` said, for logs and `osprey blocks`.
    pub description: String,
    /// Requests made to the store (every get, range read, put, list and delete).
    pub requests: Counter,
    /// Bytes of blocks' Parquet files read (footers, indexes and pages).
    pub parquet_bytes_read: Counter,
    /// The Parquet footers of the blocks read most recently.
    pub footers: crate::block::FooterCache,
    /// The trace-id indexes of the blocks read most recently.
    pub trace_indexes: crate::block::TraceIndexCache,
}

impl ObjectStorage {
    /// Opens `spec`: a URL (`s3://bucket/prefix`, `gs://…`, `az://…`, `file:///…`) or a local path.
    /// Cloud credentials and endpoints come from the provider's standard environment variables
    /// (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
    pub fn open(spec: &str) -> Result<ObjectStorage, String> {
        if spec.contains("://") && !spec.starts_with("file://") {
            let url = url::Url::parse(spec).map_err(|e| format!("storage URL {spec:?}: {e}"))?;
            let options: Vec<(String, String)> = std::env::vars()
                .filter(|(k, _)| {
                    ["AWS_", "GOOGLE_", "AZURE_"]
                        .iter()
                        .any(|p| k.starts_with(p))
                })
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect();
            let (store, prefix) = object_store::parse_url_opts(&url, options)
                .map_err(|e| format!("storage URL {spec:?}: {e}"))?;
            return Ok(ObjectStorage {
                store: Arc::from(store),
                prefix,
                local_root: None,
                description: spec.to_string(),
                requests: Counter::default(),
                parquet_bytes_read: Counter::default(),
                footers: Default::default(),
                trace_indexes: Default::default(),
            });
        }
        let path = PathBuf::from(spec.strip_prefix("file://").unwrap_or(spec));
        std::fs::create_dir_all(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
        let root = path
            .canonicalize()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let store = LocalFileSystem::new_with_prefix(&root).map_err(|e| e.to_string())?;
        Ok(ObjectStorage {
            store: Arc::new(store),
            prefix: Path::default(),
            local_root: Some(root),
            description: spec.to_string(),
            requests: Counter::default(),
            parquet_bytes_read: Counter::default(),
            footers: Default::default(),
            trace_indexes: Default::default(),
        })
    }

    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    fn blocks_dir(&self, tenant: &str) -> Path {
        self.prefix.clone().join(tenant).join("blocks")
    }

    pub fn block_file(&self, tenant: &str, block: &str, file: &str) -> Path {
        self.blocks_dir(tenant).join(block).join(file)
    }

    /// The ids of every block directory of `tenant`, complete or not.
    pub async fn list_blocks(&self, tenant: &str) -> object_store::Result<Vec<String>> {
        self.requests.inc();
        let listing = self
            .store
            .list_with_delimiter(Some(&self.blocks_dir(tenant)))
            .await?;
        Ok(listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    /// Every tenant that has a directory here.
    pub async fn list_tenants(&self) -> object_store::Result<Vec<String>> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        self.requests.inc();
        let listing = self.store.list_with_delimiter(prefix).await?;
        Ok(listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    pub async fn get(&self, path: &Path) -> object_store::Result<Bytes> {
        self.requests.inc();
        self.store.get(path).await?.bytes().await
    }

    /// An object that may have been deleted (or never finished): `None` when it is not there.
    pub async fn get_if_exists(&self, path: &Path) -> object_store::Result<Option<Bytes>> {
        match self.get(path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes one object durably: on a local directory the file and its directory are fsynced.
    pub async fn put(&self, path: &Path, bytes: Vec<u8>) -> object_store::Result<()> {
        self.requests.inc();
        self.store.put(path, PutPayload::from(bytes)).await?;
        if let Some(root) = &self.local_root {
            let file = root.join(path.as_ref());
            tokio::task::spawn_blocking(move || sync_file_and_dir(&file))
                .await
                .map_err(|e| object_store::Error::Generic {
                    store: "local",
                    source: Box::new(e),
                })?
                .map_err(|e| object_store::Error::Generic {
                    store: "local",
                    source: Box::new(e),
                })?;
        }
        Ok(())
    }

    /// When the newest object of a block directory was written (`None`: the directory is empty).
    pub async fn last_write(
        &self,
        tenant: &str,
        block: &str,
    ) -> object_store::Result<Option<std::time::SystemTime>> {
        use futures::TryStreamExt;
        self.requests.inc();
        let objects: Vec<_> = self
            .store
            .list(Some(&self.blocks_dir(tenant).join(block)))
            .try_collect()
            .await?;
        Ok(objects
            .iter()
            .map(|o| std::time::SystemTime::from(o.last_modified))
            .max())
    }

    /// Deletes every object of a block, meta first so that readers stop seeing it at once.
    pub async fn delete_block(&self, tenant: &str, block: &str) -> object_store::Result<()> {
        for file in [META_FILE, INDEX_FILE, DATA_FILE] {
            self.requests.inc();
            match self
                .store
                .delete(&self.block_file(tenant, block, file))
                .await
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let rest: Vec<Path> = self
            .store
            .list(Some(&self.blocks_dir(tenant).join(block)))
            .map_ok(|m| m.location)
            .try_collect()
            .await?;
        for path in rest {
            self.requests.inc();
            self.store.delete(&path).await?;
        }
        if let Some(root) = &self.local_root {
            let dir = root.join(self.blocks_dir(tenant).join(block).as_ref());
            let _ = std::fs::remove_dir(dir);
        }
        Ok(())
    }
}

fn sync_file_and_dir(file: &FsPath) -> std::io::Result<()> {
    std::fs::File::open(file)?.sync_all()?;
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
