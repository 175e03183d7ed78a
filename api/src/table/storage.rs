//! Printers for PersistentVolume and PersistentVolumeClaim.

use crate::json::Pointer as _;
use jiff::Timestamp;
use serde_json::Value;

use super::{AGE, Column, NAME, Printer, age_cell, arr_at, is_set, name_cell, opt_str, str_at};
use crate::quantity::quantity_string;

pub(super) const PERSISTENT_VOLUME: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Capacity",
            "string",
            "capacity is the description of the persistent volume's resources and capacity. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity",
        ),
        Column::new(
            "Access Modes",
            "string",
            "accessModes contains all ways the volume can be mounted. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes",
        ),
        Column::new(
            "Reclaim Policy",
            "string",
            "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim. Valid options are Retain (default for manually created PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), and Recycle (deprecated). Recycle must be supported by the volume plugin underlying this PersistentVolume. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming",
        ),
        Column::new(
            "Status",
            "string",
            "phase indicates if a volume is available, bound to a claim, or released by a claim. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase",
        ),
        Column::new(
            "Claim",
            "string",
            "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the authoritative bind between PV and PVC. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding",
        ),
        Column::new("StorageClass", "string", "StorageClass of the pv"),
        Column::new(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pv",
        ),
        Column::new(
            "Reason",
            "string",
            "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.",
        ),
        AGE,
        Column::new(
            "VolumeMode",
            "string",
            "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state. Value of Filesystem is implied when not included in spec.",
        )
        .wide(),
    ],
    cells: persistent_volume_cells,
};

pub(super) const PERSISTENT_VOLUME_CLAIM: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Status",
            "string",
            "phase represents the current phase of PersistentVolumeClaim.",
        ),
        Column::new(
            "Volume",
            "string",
            "volumeName is the binding reference to the PersistentVolume backing this claim.",
        ),
        Column::new(
            "Capacity",
            "string",
            "capacity represents the actual resources of the underlying volume.",
        ),
        Column::new(
            "Access Modes",
            "string",
            "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1",
        ),
        Column::new("StorageClass", "string", "StorageClass of the pvc"),
        Column::new(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pvc",
        ),
        AGE,
        Column::new(
            "VolumeMode",
            "string",
            "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.",
        )
        .wide(),
    ],
    cells: persistent_volume_claim_cells,
};

/// The annotation that, when present, names the storage class instead of
/// `spec.storageClassName`.
const BETA_STORAGE_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// `helper.GetAccessModesAsString`: `RWO,ROX,RWX,RWOP`, in that order, each once.
fn access_modes(modes: &[Value]) -> String {
    let has = |mode: &str| modes.iter().any(|m| m.as_str() == Some(mode));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| has(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The storage class: the beta annotation if present, else
/// `spec.storageClassName`.
fn storage_class(obj: &Value) -> &str {
    obj.at("/metadata/annotations")
        .and_then(|a| a.get(BETA_STORAGE_CLASS_ANNOTATION))
        .and_then(Value::as_str)
        .unwrap_or_else(|| str_at(obj, "/spec/storageClassName"))
}

/// `status.phase`, `Terminating` while being deleted; Kubernetes writes
/// `Pending` on create.
fn phase(obj: &Value) -> &str {
    if is_set(obj, "/metadata/deletionTimestamp") {
        return "Terminating";
    }
    opt_str(obj, "/status/phase")
        .filter(|p| !p.is_empty())
        .unwrap_or("Pending")
}

/// `spec.volumeMode`, which Kubernetes defaults to `Filesystem`.
fn volume_mode(obj: &Value) -> &str {
    opt_str(obj, "/spec/volumeMode").unwrap_or("Filesystem")
}

/// `spec.volumeAttributesClassName`, or `<unset>`.
fn volume_attributes_class(obj: &Value) -> &str {
    opt_str(obj, "/spec/volumeAttributesClassName").unwrap_or("<unset>")
}

/// `printPersistentVolume`: NAME CAPACITY ACCESS MODES RECLAIM POLICY STATUS
/// CLAIM STORAGECLASS VOLUMEATTRIBUTESCLASS REASON AGE | VOLUMEMODE.
fn persistent_volume_cells(pv: &Value, now: Timestamp) -> Vec<Value> {
    let claim = if is_set(pv, "/spec/claimRef") {
        format!(
            "{}/{}",
            str_at(pv, "/spec/claimRef/namespace"),
            str_at(pv, "/spec/claimRef/name")
        )
    } else {
        String::new()
    };
    // Kubernetes defaults a manually created volume's policy to Retain.
    let reclaim = opt_str(pv, "/spec/persistentVolumeReclaimPolicy")
        .filter(|p| !p.is_empty())
        .unwrap_or("Retain");
    vec![
        name_cell(pv),
        Value::from(quantity_string(pv.at("/spec/capacity/storage"))),
        Value::from(access_modes(arr_at(pv, "/spec/accessModes"))),
        Value::from(reclaim),
        Value::from(phase(pv)),
        Value::from(claim),
        Value::from(storage_class(pv)),
        Value::from(volume_attributes_class(pv)),
        Value::from(str_at(pv, "/status/reason")),
        age_cell(pv, now),
        Value::from(volume_mode(pv)),
    ]
}

/// `printPersistentVolumeClaim`: NAME STATUS VOLUME CAPACITY ACCESS MODES
/// STORAGECLASS VOLUMEATTRIBUTESCLASS AGE | VOLUMEMODE.
fn persistent_volume_claim_cells(pvc: &Value, now: Timestamp) -> Vec<Value> {
    let volume = str_at(pvc, "/spec/volumeName");
    // Capacity and modes are the bound volume's, so blank until bound.
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity_string(pvc.at("/status/capacity/storage")),
            access_modes(arr_at(pvc, "/status/accessModes")),
        )
    };
    vec![
        name_cell(pvc),
        Value::from(phase(pvc)),
        Value::from(volume),
        Value::from(capacity),
        Value::from(modes),
        Value::from(storage_class(pvc)),
        Value::from(volume_attributes_class(pvc)),
        age_cell(pvc, now),
        Value::from(volume_mode(pvc)),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn persistent_volumes() {
        let pv = json!({
            "metadata": {"name": "pv-data", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {
                "capacity": {"storage": "10240Mi"},
                "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": "local",
                "claimRef": {"namespace": "default", "name": "data"},
                "hostPath": {"path": "/srv/data"},
            },
            "status": {"phase": "Bound"},
        });
        assert_eq!(
            persistent_volume_cells(&pv, now()),
            vec![
                json!("pv-data"),
                json!("10Gi"),
                json!("RWO,RWX"),
                json!("Delete"),
                json!("Bound"),
                json!("default/data"),
                json!("local"),
                json!("<unset>"),
                json!(""),
                json!("60m"),
                json!("Filesystem"),
            ]
        );
        let bare = json!({"metadata": {"name": "p"}});
        assert_eq!(
            persistent_volume_cells(&bare, now())[1..9],
            [
                json!("0"),
                json!(""),
                json!("Retain"),
                json!("Pending"),
                json!(""),
                json!(""),
                json!("<unset>"),
                json!(""),
            ]
        );
    }

    #[test]
    fn persistent_volume_claims() {
        let pvc = json!({
            "metadata": {
                "name": "data",
                "annotations": {"volume.beta.kubernetes.io/storage-class": "legacy"},
            },
            "spec": {
                "storageClassName": "local",
                "volumeName": "pv-data",
                "volumeMode": "Block",
                "resources": {"requests": {"storage": "1Gi"}},
            },
            "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]},
        });
        assert_eq!(
            persistent_volume_claim_cells(&pvc, now()),
            vec![
                json!("data"),
                json!("Bound"),
                json!("pv-data"),
                json!("10Gi"),
                json!("RWO"),
                json!("legacy"),
                json!("<unset>"),
                json!("<unknown>"),
                json!("Block"),
            ]
        );
        let pending = json!({
            "metadata": {"name": "wait", "deletionTimestamp": "2024-05-01T11:59:00Z"},
            "spec": {"resources": {"requests": {"storage": "1Gi"}}},
        });
        assert_eq!(
            persistent_volume_claim_cells(&pending, now())[1..6],
            [
                json!("Terminating"),
                json!(""),
                json!(""),
                json!(""),
                json!("")
            ]
        );
    }
}
