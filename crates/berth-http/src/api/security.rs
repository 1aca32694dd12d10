//! The security report of a manifest, Quay-compatible:
//! `GET /api/v1/repository/{ns}/{repo}/manifest/{digest}/security[?vulnerabilities=true]`.
//! Repository `read` is enough. The shape is Clair's as Quay relays it (`status`, then
//! `data.Layer.Features[]` with `Vulnerabilities[]` when asked); Berth adds the failure `reason`
//! and each feature's `Path`.

use axum::Json;
use axum::extract::{Path, Query, State};
use berth_app::secscan::{ScanState, SecurityReport};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::HttpState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiCtx;

pub(crate) fn router() -> OpenApiRouter<HttpState> {
    OpenApiRouter::new().routes(routes!(manifest_security))
}

/// Query of the security report.
#[derive(Debug, Deserialize, IntoParams)]
pub struct SecurityQuery {
    /// Include each feature's vulnerabilities.
    #[serde(default)]
    pub vulnerabilities: bool,
}

/// A manifest's security report.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityOut {
    /// `queued`, `scanned`, `failed` or `unsupported`.
    pub status: String,
    /// Why the scan failed or is unsupported (Berth addition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The report, when scanned: `{"Layer": {…, "Features": […]}}`.
    #[schema(value_type = Object)]
    pub data: Value,
}

#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/manifest/{manifestref}/security", tag = "secscan",
    operation_id = "getRepoManifestSecurity",
    params(("namespace" = String, Path), ("repository" = String, Path), ("manifestref" = String, Path, description = "manifest digest"), SecurityQuery),
    responses((status = 200, body = SecurityOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn manifest_security(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name, digest)): Path<(String, String, String)>,
    Query(q): Query<SecurityQuery>,
) -> ApiResult<Json<SecurityOut>> {
    let report = s.app.security_report(&ctx.caller, &ns, &name, &digest).await?;
    Ok(Json(render(&report, q.vulnerabilities)))
}

fn render(report: &SecurityReport, with_vulnerabilities: bool) -> SecurityOut {
    let reason = match &report.state {
        ScanState::Failed(r) | ScanState::Unsupported(r) => Some(r.clone()),
        _ => None,
    };
    let Some(image) = &report.image else {
        return SecurityOut {
            status: report.state.as_str().to_owned(),
            reason,
            data: Value::Null,
        };
    };
    let namespace = image
        .distro
        .as_ref()
        .map(berth_app::vocab::Distro::namespace)
        .unwrap_or_default();
    let features: Vec<Value> = image
        .packages
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let found: Vec<(&berth_app::secscan::Vulnerability, &Option<String>)> = report
                .vulnerabilities
                .iter()
                .filter_map(|v| v.packages.iter().find(|(p, _)| *p == i).map(|(_, fix)| (v, fix)))
                .collect();
            let os_package = f.package.source.is_os();
            let mut feature = json!({
                "Name": f.package.name,
                "VersionFormat": f.package.source.scheme().as_str(),
                "NamespaceName": if os_package { namespace.clone() } else { String::new() },
                "AddedBy": f.layer,
                "Version": f.package.version,
                "Path": f.path,
                "BaseScores": found.iter().filter_map(|(v, _)| v.advisory.base_score()).collect::<Vec<f64>>(),
                "CVEIds": found.iter().flat_map(|(v, _)| std::iter::once(&v.advisory.id).chain(&v.advisory.aliases))
                    .filter(|id| id.starts_with("CVE-")).collect::<Vec<_>>(),
            });
            if with_vulnerabilities {
                feature["Vulnerabilities"] = found
                    .iter()
                    .map(|(v, fix)| {
                        let mut metadata = json!({"Aliases": v.advisory.aliases, "Modified": v.advisory.modified});
                        if let Some(score) = v.advisory.base_score() {
                            metadata["NVD"] = json!({"CVSSv3": {"Score": score}});
                        }
                        json!({
                            "Name": v.advisory.id,
                            "NamespaceName": if os_package { namespace.clone() } else { String::new() },
                            "Description": v.advisory.description(),
                            "Link": v.advisory.link(),
                            "Severity": v.severity.as_str(),
                            "FixedBy": fix.as_deref().unwrap_or_default(),
                            "Metadata": metadata,
                        })
                    })
                    .collect();
            }
            feature
        })
        .collect();
    SecurityOut {
        status: report.state.as_str().to_owned(),
        reason,
        data: json!({"Layer": {
            "Name": report.digest,
            "ParentName": "",
            "NamespaceName": namespace,
            "IndexedByVersion": 1,
            "Features": features,
        }}),
    }
}
