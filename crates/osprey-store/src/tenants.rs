//! Tenants: each has a store of its own (log, head, blocks under `<tenant>/` in the block store), so
//! no answer ever mixes them. The tenant comes from `X-Scope-OrgID` (as Tempo, Loki and Mimir take
//! it); without one, [`DEFAULT_TENANT`].
//!
//! The default tenant's log is `<data-dir>/wal`; another's is `<data-dir>/tenants/<tenant>/wal`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::{OpenReport, Shared, Store, StoreMetrics, StoreOptions, DEFAULT_TENANT};

/// Tenants a server keeps at most: each has a log writer and a head of its own.
pub const MAX_TENANTS: usize = 1000;

/// A tenant id as Tempo accepts it: 1 to 150 of `A-Z a-z 0-9 ! - _ . * ' ( )`, not `.` or `..`.
pub fn validate_tenant(tenant: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "!-_.*'()".contains(c);
    if tenant.is_empty() || tenant.len() > 150 {
        return Err(format!(
            "tenant id (X-Scope-OrgID) must be 1 to 150 characters, not {}",
            tenant.len()
        ));
    }
    if tenant == "." || tenant == ".." || !tenant.chars().all(allowed) {
        return Err(format!(
            "tenant id (X-Scope-OrgID) {tenant:?} may only hold letters, digits and !-_.*'()"
        ));
    }
    Ok(())
}

pub struct Tenants {
    data_dir: PathBuf,
    shared: Shared,
    stores: RwLock<BTreeMap<String, Arc<Store>>>,
    /// Held while a tenant's store is being opened, so two requests never open it twice.
    opening: tokio::sync::Mutex<()>,
}

impl Tenants {
    /// Opens every tenant that has a log here or blocks in the store, and the default tenant.
    pub async fn open(
        data_dir: &Path,
        options: StoreOptions,
    ) -> io::Result<(Tenants, Vec<(String, OpenReport)>)> {
        let shared = Shared::open(data_dir, options)?;
        let tenants = Tenants {
            data_dir: data_dir.to_path_buf(),
            shared,
            stores: RwLock::new(BTreeMap::new()),
            opening: tokio::sync::Mutex::new(()),
        };
        let mut names = vec![DEFAULT_TENANT.to_string()];
        if let Ok(entries) = std::fs::read_dir(data_dir.join("tenants")) {
            for entry in entries.flatten() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.extend(tenants.stored_tenants().await?);
        names.sort();
        names.dedup();
        let mut reports = Vec::new();
        for name in names.iter().filter(|n| validate_tenant(n).is_ok()) {
            let (_, report) = tenants.open_store(name).await?;
            reports.push((name.clone(), report));
        }
        Ok((tenants, reports))
    }

    async fn stored_tenants(&self) -> io::Result<Vec<String>> {
        self.shared
            .storage
            .list_tenants()
            .await
            .map_err(crate::block::io_error)
    }

    fn wal_dir(&self, tenant: &str) -> PathBuf {
        if tenant == DEFAULT_TENANT {
            self.data_dir.join("wal")
        } else {
            self.data_dir.join("tenants").join(tenant).join("wal")
        }
    }

    async fn open_store(&self, tenant: &str) -> io::Result<(Arc<Store>, OpenReport)> {
        let (store, report) =
            Store::open_tenant(&self.shared, &self.wal_dir(tenant), tenant).await?;
        let store = Arc::new(store);
        tokio::spawn(store.clone().run_maintenance());
        self.stores
            .write()
            .insert(tenant.to_string(), store.clone());
        Ok((store, report))
    }

    /// The tenant's store, if it has one.
    pub fn get(&self, tenant: &str) -> Option<Arc<Store>> {
        self.stores.read().get(tenant).cloned()
    }

    /// The tenant's store, opened (and its log created) on the tenant's first write.
    pub async fn get_or_open(&self, tenant: &str) -> io::Result<Arc<Store>> {
        if let Some(store) = self.get(tenant) {
            return Ok(store);
        }
        validate_tenant(tenant).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let _opening = self.opening.lock().await;
        if let Some(store) = self.get(tenant) {
            return Ok(store);
        }
        if self.stores.read().len() >= MAX_TENANTS {
            return Err(io::Error::other(format!(
                "this server already keeps {MAX_TENANTS} tenants"
            )));
        }
        tracing::info!(tenant, "first spans of a new tenant");
        Ok(self.open_store(tenant).await?.0)
    }

    /// Opens tenants that other servers created in the shared block store since start-up.
    pub async fn discover(&self) -> io::Result<()> {
        for tenant in self.stored_tenants().await? {
            if self.get(&tenant).is_none() && validate_tenant(&tenant).is_ok() {
                let _opening = self.opening.lock().await;
                if self.get(&tenant).is_none() {
                    self.open_store(&tenant).await?;
                }
            }
        }
        Ok(())
    }

    /// Every tenant's store, by tenant id.
    pub fn all(&self) -> Vec<Arc<Store>> {
        self.stores.read().values().cloned().collect()
    }

    pub fn metrics(&self) -> &StoreMetrics {
        &self.shared.metrics
    }

    pub fn storage(&self) -> &crate::ObjectStorage {
        &self.shared.storage
    }

    /// Looks for new tenants in the block store every `block_list_interval`, until the process ends.
    pub async fn run_discovery(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.shared.options.block_list_interval).await;
            if let Err(e) = self.discover().await {
                tracing::warn!(error = %e, "listing tenants in the block store failed");
            }
        }
    }
}
