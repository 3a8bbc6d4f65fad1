#ifndef KAGI_VERSION_H
#define KAGI_VERSION_H
#define KAGI_VERSION "0.1.0"
#endif
