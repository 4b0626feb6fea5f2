/* The seeds' "Hello World": one program, three ways to ship it (see README.md). */
#include <stdio.h>

int main(void)
{
    puts("Hello, world!");
    return 0;
}
