// Package instance tracks confidential instances: every enclave or
// confidential VM running a certified image registers with fresh TEE
// evidence bound to a nonce the server issued, and gets an attestation
// status (verified, stale, failed, revoked) with the reason.
//
// The Tracker holds every instance in memory, so that Trusted (what the
// secret store's release policy and identity issuance ask) answers without
// the database, and persists each change through the store in the same
// transaction as its audit entry. New collateral (a TCB info update, a
// raised minimum SNP TCB, a CRL) re-judges every instance from its
// recorded result without its evidence and revokes those that no longer
// pass: the same "new evidence revokes trust" loop as advisories. Run
// marks instances stale when they have not re-attested in time and
// reloads the collateral directory when it changes.
//
// Region: an instance's region is believed in order of strength from the
// platform table (the hardware-signed chip ID mapped to a region by the
// operator), from HOST_DATA/MRCONFIGID (bound by the provider at launch,
// see HostDataFor), or from the registrant's word (the node's
// configuration), and is labelled with its source; a policy may require an
// attested source and a list of regions.
package instance
