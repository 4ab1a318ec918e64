//! [`ApiObjects`]: the [`VolumeObjects`] of a running kubelet, plain GETs over its
//! `kube::Client` (and a TokenRequest for projected service account tokens).

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, Secret, ServiceAccount,
};
use kube::api::{Api, PostParams};

use super::VolumeObjects;

/// Volume sources read from the API server.
#[derive(Clone)]
pub struct ApiObjects {
    pub client: kube::Client,
}

fn msg(e: kube::Error) -> String {
    e.to_string()
}

#[async_trait]
impl VolumeObjects for ApiObjects {
    async fn config_map(&self, ns: &str, name: &str) -> Result<Option<ConfigMap>, String> {
        Api::<ConfigMap>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(msg)
    }

    async fn secret(&self, ns: &str, name: &str) -> Result<Option<Secret>, String> {
        Api::<Secret>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(msg)
    }

    async fn pvc(&self, ns: &str, name: &str) -> Result<Option<PersistentVolumeClaim>, String> {
        Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(msg)
    }

    async fn pv(&self, name: &str) -> Result<Option<PersistentVolume>, String> {
        Api::<PersistentVolume>::all(self.client.clone())
            .get_opt(name)
            .await
            .map_err(msg)
    }

    async fn token(
        &self,
        ns: &str,
        service_account: &str,
        audience: Option<&str>,
        expiration_seconds: i64,
        pod: &Pod,
    ) -> Result<Option<String>, String> {
        let req = TokenRequest {
            spec: TokenRequestSpec {
                audiences: audience.map(|a| vec![a.to_owned()]).unwrap_or_default(),
                expiration_seconds: Some(expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
            },
            ..Default::default()
        };
        let api = Api::<ServiceAccount>::namespaced(self.client.clone(), ns);
        match api
            .create_subresource::<TokenRequest, TokenRequest>(
                "token",
                service_account,
                &PostParams::default(),
                &req,
            )
            .await
        {
            Ok(tr) => Ok(tr.status.map(|s| s.token).filter(|t| !t.is_empty())),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => Ok(None),
            Err(e) => Err(msg(e)),
        }
    }
}
