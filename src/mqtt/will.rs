//! Will messages: published when a connection ends without a normal DISCONNECT (or with an
//! MQTT 5 DISCONNECT 0x04 "disconnect with will message"), through the normal publish path,
//! keeping QoS and RETAIN. An MQTT 5 will delay interval postpones it; a new connection with
//! the same client id within the delay cancels it ([MQTT-3.1.3-9]).

use std::sync::Arc;
use std::time::Duration;

use jetway_protocols::mqtt::{Publish, Will};
use tokio_util::sync::CancellationToken;

use super::MqttServer;
use crate::account::Account;

/// The PUBLISH a will becomes.
pub fn to_publish(will: &Will) -> Publish {
    let mut publish = Publish::new(will.topic.clone(), will.payload.clone());
    publish.qos = will.qos;
    publish.retain = will.retain;
    let mut properties = will.properties.clone();
    properties.will_delay_interval = None;
    publish.properties = properties;
    publish
}

/// Publishes `will` now, or after `delay` unless cancelled by a reconnect of `client_id`.
pub fn publish(mqtt: &Arc<MqttServer>, account: Arc<Account>, client_id: &str, will: Will, delay: Duration) {
    if delay.is_zero() {
        mqtt.publish_will(&account, &to_publish(&will));
        return;
    }
    let cancel = CancellationToken::new();
    mqtt.pending_wills.lock().insert((account.name.to_string(), client_id.to_owned()), cancel.clone());
    let mqtt = mqtt.clone();
    let key = (account.name.to_string(), client_id.to_owned());
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {
                let still_ours = {
                    let mut pending = mqtt.pending_wills.lock();
                    let ours = pending.get(&key).is_some_and(|c| !c.is_cancelled());
                    if ours {
                        pending.remove(&key);
                    }
                    ours
                };
                if still_ours {
                    mqtt.publish_will(&account, &to_publish(&will));
                }
            }
            _ = cancel.cancelled() => {}
        }
    });
}
