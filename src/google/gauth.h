/*
 * gauth.h - Google OAuth 2.0 access tokens, as Google's client libraries
 * obtain them, shared by the Cloud Storage lake and the BigQuery warehouse.
 *
 * Sources, in order:
 *   1. a service-account key file (GOOGLE_APPLICATION_CREDENTIALS): a JWT
 *      with claims iss, scope, aud (the key's token_uri), iat, exp, signed
 *      RS256 with the key's private_key (OpenSSL), exchanged at token_uri
 *      (grant_type urn:ietf:params:oauth:grant-type:jwt-bearer);
 *   2. without a key file, the metadata server (GKE Workload Identity, GCE):
 *      GET http://$GCE_METADATA_HOST/computeMetadata/v1/instance/
 *      service-accounts/default/token with Metadata-Flavor: Google
 *      (GCE_METADATA_HOST defaults to metadata.google.internal).
 * Tokens are cached and renewed before they expire (refresh skew 5 min, or
 * a quarter of the token's lifetime when that is shorter, so that a token
 * issued for a few seconds is not refreshed on every call).
 * The private key, the JWT and the tokens never reach a log, an error
 * message or an artifact: every token is registered with log_add_secret().
 */
#ifndef DATAOPS_GAUTH_H
#define DATAOPS_GAUTH_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

#define GAUTH_SCOPE_CLOUD "https://www.googleapis.com/auth/cloud-platform"

struct gauth;

/* key_path may be NULL or "" (then the metadata server is used).  A missing,
 * unreadable, malformed or wrong-type key file is ERR_CONFIG naming the
 * file and the problem (never its content). */
int gauth_create(const char *key_path, const char *scope, struct gauth **out, struct err *e);
void gauth_destroy(struct gauth *g);
/* Copy a valid access token into out (a fresh one if the cached token
 * expires within the skew of now_ms).  A token endpoint that refuses gives
 * ERR_HTTP_FATAL with its error and error_description. */
int gauth_token(struct gauth *g, int64_t now_ms, char *out, size_t n, struct err *e);
/* Forget the cached token (after a 401). */
void gauth_invalidate(struct gauth *g);
/* The service account's email (or "metadata-server"), for messages. */
const char *gauth_principal(const struct gauth *g);

/* Extensions (stable; added by the Cloud Storage lake). */

/* The signed JWT assertion gauth_token would exchange at now_ms, appended
 * to out (key-file credentials only; ERR_CONFIG for the metadata server).
 * For tests and diagnostics: the assertion is a credential for an hour, so
 * it must never be logged; the caller wipes out when done. */
int gauth_assertion(struct gauth *g, int64_t now_ms, struct buf *out, struct err *e);
/* Where tokens come from, for messages: the key's token_uri without query,
 * or the metadata server's token URL.  Borrowed, valid until destroy. */
const char *gauth_source(const struct gauth *g);
/* Tokens fetched so far (for tests and the run's log). */
unsigned gauth_fetches(const struct gauth *g);

#endif
