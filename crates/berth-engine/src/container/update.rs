//! `update` (resources and restart policy of a live container) and `rename`.

use super::create::{validate_resources, validate_restart_policy};
use crate::models::UpdateBody;
use crate::{names, Engine, Error, Result};
use std::collections::BTreeMap;

impl Engine {
    pub async fn update_container(&self, name: &str, u: UpdateBody) -> Result<Vec<String>> {
        let h = self.lookup(name)?;
        let _op = h.op.lock().await;
        // Like dockerd, zero values mean "leave as is": the docker CLI sends every field.
        let mut hc = h.snapshot().host_config;
        if let Some(v) = u.memory.filter(|v| *v != 0) {
            hc.memory = v;
        }
        if let Some(v) = u.memory_swap.filter(|v| *v != 0) {
            hc.memory_swap = v;
        }
        if let Some(v) = u.memory_reservation.filter(|v| *v != 0) {
            hc.memory_reservation = v;
        }
        if let Some(v) = u.cpu_shares.filter(|v| *v != 0) {
            hc.cpu_shares = v;
        }
        if let Some(v) = u.nano_cpus.filter(|v| *v != 0) {
            hc.nano_cpus = v;
        }
        if let Some(v) = u.cpu_period.filter(|v| *v != 0) {
            hc.cpu_period = v;
        }
        if let Some(v) = u.cpu_quota.filter(|v| *v != 0) {
            hc.cpu_quota = v;
        }
        if let Some(v) = u.cpuset_cpus.clone().filter(|v| !v.is_empty()) {
            hc.cpuset_cpus = v;
        }
        if let Some(v) = u.cpuset_mems.clone().filter(|v| !v.is_empty()) {
            hc.cpuset_mems = v;
        }
        if let Some(v) = u.pids_limit {
            hc.pids_limit = Some(v);
        }
        if let Some(v) = u.blkio_weight.filter(|v| *v != 0) {
            hc.blkio_weight = v;
        }
        if let Some(rp) = u.restart_policy.clone().filter(|rp| !rp.name.is_empty()) {
            hc.restart_policy = rp;
        }
        validate_resources(&hc)?;
        validate_restart_policy(&hc)?;
        let c = h.snapshot();
        if c.state.status().can_kill() {
            let opt = |v: i64| (v != 0).then_some(v);
            let res = berth_runtime::spec::Resources {
                memory: opt(hc.memory),
                memory_swap: opt(hc.memory_swap),
                memory_reservation: opt(hc.memory_reservation),
                cpu_shares: (hc.cpu_shares != 0).then_some(hc.cpu_shares as u64),
                cpu_quota: opt(hc.cpu_quota),
                cpu_period: (hc.cpu_period != 0).then_some(hc.cpu_period as u64),
                nano_cpus: opt(hc.nano_cpus),
                cpuset_cpus: (!hc.cpuset_cpus.is_empty()).then(|| hc.cpuset_cpus.clone()),
                cpuset_mems: (!hc.cpuset_mems.is_empty()).then(|| hc.cpuset_mems.clone()),
                pids_limit: hc.pids_limit.filter(|p| *p > 0),
                ..Default::default()
            };
            berth_runtime::cgroups::update(&c.cgroups_path, &res)
                .map_err(|e| Error::Internal(format!("Cannot update container {}: {e}", c.id)))?;
        }
        h.update(|r| r.host_config = hc);
        self.persist(&h)?;
        self.emit_container(&h, "update", BTreeMap::new());
        Ok(Vec::new())
    }

    pub async fn rename_container(&self, name: &str, new_name: &str) -> Result<()> {
        let h = self.lookup(name)?;
        if new_name.is_empty() {
            return Err(Error::InvalidArgument(
                "Neither old nor new names may be empty".into(),
            ));
        }
        names::validate(new_name)?;
        let old = h.snapshot().name;
        if old.trim_start_matches('/') == new_name.trim_start_matches('/') {
            return Err(Error::InvalidArgument(
                "Renaming a container with the same name as its current name".into(),
            ));
        }
        let new = self.inner.names.reserve(new_name, &h.id)?;
        h.update(|r| r.name = new.clone());
        if let Err(e) = self.persist(&h) {
            self.inner.names.release(&new);
            h.update(|r| r.name = old.clone());
            return Err(e);
        }
        self.inner.names.release(&old);
        let mut attrs = BTreeMap::new();
        attrs.insert("oldName".into(), old);
        self.emit_container(&h, "rename", attrs);
        Ok(())
    }
}
