//! What a reload finds changed, and what of it only a restart can apply. Configs are compared
//! by value (`PartialEq`): a secret by its text, TLS by the digest of its files as read at
//! load, so a changed password or certificate is seen though its `Debug` text is redacted or
//! names the same file.

use crate::config::Config;

/// The sections of `new` that differ from `old`, named as the file names them.
pub fn changed(old: &Config, new: &Config) -> Vec<&'static str> {
    // Destructured whole, so that a new section cannot be left out of the comparison.
    let Config {
        site,
        gateway,
        mqtt,
        equipment,
        mqtt_mappings,
        outbox,
        modbus_devices,
        thresholds,
        rules,
        influx,
        line_files,
        central,
        // What `seguard check` warned about follows from the sections above.
        warnings: _,
    } = new;
    [
        (old.site != *site, "[site]"),
        (old.gateway != *gateway, "[gateway]"),
        (old.mqtt != *mqtt, "[mqtt]"),
        (old.equipment != *equipment, "[[equipment]]"),
        (old.mqtt_mappings != *mqtt_mappings, "[[ingest.mqtt]]"),
        (old.outbox != *outbox, "[outbox]"),
        (old.modbus_devices != *modbus_devices, "[modbus]"),
        (old.thresholds != *thresholds, "[[rules.threshold]]"),
        (old.rules != *rules, "[rules]"),
        (old.influx != *influx, "[[uplink.influx]]"),
        (old.line_files != *line_files, "[[uplink.linefile]]"),
        (old.central != *central, "[uplink.central]"),
    ]
    .into_iter()
    .filter_map(|(differs, name)| differs.then_some(name))
    .collect()
}

/// What a reload cannot change in a running gateway, one message each; empty when the new
/// config can be applied.
pub fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut changed = Vec::new();
    if old.site != new.site {
        changed.push("[site]");
    }
    if old.gateway.id != new.gateway.id {
        changed.push("[gateway] id");
    }
    if old.gateway.http_listen != new.gateway.http_listen {
        changed.push("[gateway] http_listen");
    }
    if old.gateway.http_limits != new.gateway.http_limits {
        changed.push("[gateway] http_limits");
    }
    if old.outbox != new.outbox {
        changed.push("[outbox]");
    }
    if old.influx != new.influx {
        changed.push("[[uplink.influx]]");
    }
    if old.line_files != new.line_files {
        changed.push("[[uplink.linefile]]");
    }
    if old.central != new.central {
        changed.push("[uplink.central]");
    }
    if let (Some(a), Some(b)) = (&old.mqtt, &new.mqtt) {
        if a.client_id != b.client_id {
            // The broker keeps what is queued for the old session under the old id.
            changed.push("[mqtt] client_id");
        }
    }
    changed
        .into_iter()
        .map(|what| {
            format!(
                "{what} changed: only a restart applies it (systemctl restart seguard-gateway); a reload applies equipment, mappings, Modbus devices, rules and the other [mqtt] settings"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "[site]\nid = \"s\"\nname = \"S\"\n[gateway]\nid = \"gw\"\n\
             [mqtt]\nhost = \"127.0.0.1\"\nport = 1883\nusername = \"gw\"\n{extra}"
        );
        crate::config::parse(&text, Path::new("site.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_changed_password_is_a_change_though_its_debug_text_is_the_same() {
        let old = config("password = \"one\"\n");
        let new = config("password = \"two\"\n");
        assert_eq!(format!("{old:?}"), format!("{new:?}"), "redacted alike");
        assert_eq!(changed(&old, &new), ["[mqtt]"]);
        assert!(needs_restart(&old, &new).is_empty(), "[mqtt] reloads");
        assert!(changed(&old, &config("password = \"one\"\n")).is_empty());
    }

    #[test]
    fn a_changed_central_password_is_refused_as_needing_a_restart() {
        let central = |password: &str| {
            config(&format!(
                "[uplink.central]\n[uplink.central.broker]\nhost = \"127.0.0.1\"\nport = 1884\nusername = \"gw\"\npassword = \"{password}\"\n"
            ))
        };
        let refused = needs_restart(&central("one"), &central("two"));
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(
            refused[0].starts_with("[uplink.central] changed: only a restart applies it"),
            "{}",
            refused[0]
        );
        assert!(needs_restart(&central("one"), &central("one")).is_empty());
    }
}
