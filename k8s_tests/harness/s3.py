"""An S3-compatible server in a test namespace, standing in for a cloud bucket: images/s3 (gofakes3
in memory, built by `make k8s-test-images` as S3_IMAGE, loaded with `kind load`: no registry).

It creates its bucket at start and takes the one access key ID it accepts from the same Secret the
chart gives the Dagster pods, so an object written proves the pods used that Secret. The tests
read the bucket through a port-forward with boto3.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

import boto3
from kubernetes import client

from k8s_tests.harness.cluster import KindCluster, wait_until
from k8s_tests.harness.deployment import PortForward

COMPONENT = "s3"
# Its UID (images/s3/build-image.sh); any non-root one would do.
SERVER_UID = 65532
READY_TIMEOUT_SECONDS = 120
LABELS = {"app.kubernetes.io/name": "s3", "app.kubernetes.io/component": COMPONENT}


@dataclass
class S3Server:
    """The server's bucket and credentials, and boto3 through a port-forward to its Service."""

    bucket: str
    access_key_id: str
    secret_access_key: str
    port_forward: PortForward

    def client(self) -> Any:
        self.port_forward.ensure()
        return boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{self.port_forward.local_port}",
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name="us-east-1",
        )

    def objects(self, prefix: str) -> dict[str, int]:
        """Key -> size of every object under `prefix`."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}

    def read(self, key: str) -> bytes:
        return self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def stop(self) -> None:
        self.port_forward.stop()


def create_credentials_secret(
    core_v1: client.CoreV1Api, namespace: str, name: str, access_key_id_key: str, secret_access_key_key: str
) -> tuple[str, str]:
    """A Secret with a fresh access key ID and secret access key under the given keys; returns both."""
    access_key_id = "AKTEST" + secrets.token_hex(7).upper()
    secret_access_key = secrets.token_urlsafe(30)
    core_v1.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=name),
            data={
                access_key_id_key: base64.b64encode(access_key_id.encode()).decode(),
                secret_access_key_key: base64.b64encode(secret_access_key.encode()).decode(),
            },
        ),
    )
    return access_key_id, secret_access_key


def _restricted_container_security() -> client.V1SecurityContext:
    return client.V1SecurityContext(
        run_as_non_root=True,
        run_as_user=SERVER_UID,
        run_as_group=SERVER_UID,
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        capabilities=client.V1Capabilities(drop=["ALL"]),
        seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
    )


def deploy_s3_server(
    cluster: KindCluster,
    core_v1: client.CoreV1Api,
    apps_v1: client.AppsV1Api,
    namespace: str,
    *,
    image: str,
    service: str,
    port: int,
    bucket: str,
    secret: str,
    access_key_id_key: str,
    secret_access_key_key: str,
) -> S3Server:
    """The server (a Deployment of one pod passing Pod Security "restricted") behind Service
    `service`:`port`, its bucket created, the credentials' Secret `secret` created first; returns
    once it is ready."""
    access_key_id, secret_access_key = create_credentials_secret(
        core_v1, namespace, secret, access_key_id_key, secret_access_key_key
    )
    container = client.V1Container(
        name="s3",
        image=image,
        image_pull_policy="Never",
        args=["-listen", f":{port}", "-buckets", bucket],
        env=[
            client.V1EnvVar(
                name="S3_ACCESS_KEY_ID",
                value_from=client.V1EnvVarSource(
                    secret_key_ref=client.V1SecretKeySelector(name=secret, key=access_key_id_key)
                ),
            )
        ],
        ports=[client.V1ContainerPort(name="s3", container_port=port)],
        readiness_probe=client.V1Probe(http_get=client.V1HTTPGetAction(path="/-/ready", port="s3"), period_seconds=2),
        resources=client.V1ResourceRequirements(requests={"cpu": "10m", "memory": "32Mi"}, limits={"memory": "256Mi"}),
        security_context=_restricted_container_security(),
    )
    apps_v1.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name=service, labels=LABELS),
            spec=client.V1DeploymentSpec(
                replicas=1,
                selector=client.V1LabelSelector(match_labels=LABELS),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=LABELS),
                    spec=client.V1PodSpec(
                        containers=[container],
                        automount_service_account_token=False,
                        security_context=client.V1PodSecurityContext(
                            run_as_non_root=True, seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault")
                        ),
                    ),
                ),
            ),
        ),
    )
    core_v1.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name=service, labels=LABELS),
            spec=client.V1ServiceSpec(
                selector=LABELS, ports=[client.V1ServicePort(name="s3", port=port, target_port="s3")]
            ),
        ),
    )

    def ready() -> tuple[bool, str]:
        status = apps_v1.read_namespaced_deployment(service, namespace).status
        return (status.ready_replicas or 0) >= 1, f"deployment {service}: {status.ready_replicas or 0}/1 ready"

    wait_until(f"the S3 server {namespace}/{service} to be ready", ready, READY_TIMEOUT_SECONDS)
    return S3Server(
        bucket=bucket,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        port_forward=PortForward(cluster.kubeconfig, namespace, f"svc/{service}", port),
    )
