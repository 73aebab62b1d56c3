/* uuid.h - random (version 4) UUIDs for run ids. */
#ifndef DATAOPS_UUID_H
#define DATAOPS_UUID_H

/* Writes "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" + NUL. Returns 0 or -1. */
int uuid_v4(char out[37]);

#endif
