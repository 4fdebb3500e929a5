//! The event bus behind `GET /events`.
//!
//! Events are broadcast to live subscribers and kept in a bounded ring so `since` can replay
//! recent history, as dockerd does (it keeps the last 256).

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

const HISTORY: usize = 1024;

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Event {
    /// Legacy fields Docker still sends for container and image events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(rename = "Type")]
    pub typ: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

pub struct EventBus {
    tx: broadcast::Sender<Event>,
    history: Mutex<VecDeque<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> EventBus {
        let (tx, _) = broadcast::channel(4096);
        EventBus {
            tx,
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
        }
    }

    pub fn emit(&self, typ: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let legacy = typ == "container" || typ == "image";
        let ev = Event {
            status: legacy.then(|| action.to_string()),
            id: legacy.then(|| id.to_string()),
            from: if typ == "container" {
                attributes.get("image").cloned()
            } else {
                None
            },
            typ: typ.to_string(),
            action: action.to_string(),
            actor: Actor {
                id: id.to_string(),
                attributes,
            },
            scope: "local".into(),
            time: now.as_secs() as i64,
            time_nano: now.as_nanos() as i64,
        };
        {
            let mut h = self.history.lock().expect("event history lock poisoned");
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(ev.clone());
        }
        let _ = self.tx.send(ev);
    }

    /// Subscribes first, then copies history, so nothing between the two is missed
    /// (a duplicate is possible and filtered by the caller through timeNano).
    pub fn subscribe(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let rx = self.tx.subscribe();
        let h = self.history.lock().expect("event history lock poisoned");
        (h.iter().cloned().collect(), rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emits_to_history_and_subscribers() {
        let bus = EventBus::new();
        let (_, mut rx) = bus.subscribe();
        let mut attrs = BTreeMap::new();
        attrs.insert("image".to_string(), "busybox".to_string());
        bus.emit("container", "start", "abc", attrs);
        let ev = rx.try_recv().expect("event delivered");
        assert_eq!(ev.action, "start");
        assert_eq!(ev.from.as_deref(), Some("busybox"));
        let (hist, _) = bus.subscribe();
        assert_eq!(hist.len(), 1);
        let json = serde_json::to_value(&hist[0]).expect("serializes");
        assert_eq!(json["Type"], "container");
        assert_eq!(json["Actor"]["ID"], "abc");
    }
}
