//! Global config RPCs: ADMIN writes the testbed settings; node identities and ADMIN read the
//! storage credentials in them, everyone else reads them blanked.

use leotest_proto::unary::*;
use tonic::Code;

use crate::harness::{denied, Scene, FAILED, OK};

fn settings(connection_string: &str, apikey: &str) -> Settings {
    Settings {
        datastore: Some(DatastoreSettings {
            blob: Some(BlobSettings {
                connection_string: connection_string.into(),
                container: "artifacts".into(),
                artifact_path: "runs/".into(),
            }),
        }),
        weather: Some(WeatherApiSettings {
            apikey: apikey.into(),
        }),
    }
}

fn update(s: Settings) -> MessageUpdateGlobalConfig {
    MessageUpdateGlobalConfig { config: Some(s) }
}

/// ADMIN updates the config; a user or a node is denied and the config stays.
mod update_global_config {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        let r =
            s.h.admin()
                .update_global_config(update(settings("cs-1", "key-1")))
                .await;
        assert_eq!((r.state, r.message.as_str()), (OK, "config updated"));
        let c =
            s.h.admin()
                .get_global_config(())
                .await
                .config
                .expect("a config");
        assert_eq!(c, settings("cs-1", "key-1"));
    }

    pub(super) async fn refused(s: Scene) {
        s.h.admin()
            .update_global_config(update(settings("cs-1", "key-1")))
            .await;
        for (who, role) in [(&s.alice, "USER"), (&s.n1, "NODE")] {
            let r = who
                .update_global_config(update(settings("evil", "evil")))
                .await;
            assert_eq!((r.state, r.message), (FAILED, denied(who, role)));
        }
        let c =
            s.h.admin()
                .get_global_config(())
                .await
                .config
                .expect("a config");
        assert_eq!(c, settings("cs-1", "key-1"));
    }
}

/// A node reads the config in full (its agent uploads artifacts with it).
mod get_global_config {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        assert_eq!(s.n1.get_global_config(()).await.config, None);
        s.h.admin()
            .update_global_config(update(settings("cs-1", "key-1")))
            .await;
        let c = s.n1.get_global_config(()).await.config.expect("a config");
        assert_eq!(c, settings("cs-1", "key-1"));
    }

    pub(super) async fn refused(s: Scene) {
        s.h.admin()
            .update_global_config(update(settings("cs-1", "key-1")))
            .await;
        // A person gets the same shape with the credentials blank (the original's clients
        // retry any error status forever).
        let c = s
            .alice
            .get_global_config(())
            .await
            .config
            .expect("a config");
        assert_eq!(c, settings("", ""));
        let status =
            s.h.anonymous()
                .try_get_global_config(())
                .await
                .expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated);
    }
}

rpc_tests!(update_global_config, get_global_config);
