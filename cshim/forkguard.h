#ifndef WALRUST_FORKGUARD_H
#define WALRUST_FORKGUARD_H

// walrustInstallForkGuard puts the fork guard in place of the VFS named
// name, which must be registered already; later calls do nothing.
int walrustInstallForkGuard(const char *name);

// walrustForked says whether this process is the child of a fork made after
// the guard was installed: then nothing may call into Go.
int walrustForked(void);

// walrustForkedMessage is what to tell a user in that case.
const char *walrustForkedMessage(void);

#endif
