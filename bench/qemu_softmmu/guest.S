// A tiny x86-64 guest for qemu_softmmu_bench.sh: QEMU's softmmu miss + 4-level walk, timed
// inside QEMU (TCG) on the same tables as walk_bench's BM_Walk4Level_GuestMemory -- gva
// 0x7f12'3456'7000 mapped by 4 levels of 4 KiB tables, entries P|RW|US, the leaf also XD,
// EFER.NXE on, A bits already set after the first access.
//
// Multiboot v1 (QEMU -kernel) enters in 32-bit protected mode with paging off; the guest turns
// on PAE paging in long mode with static tables (the first GiB identity-mapped with 2 MiB pages
// for code and data), then times, with rdtsc, kIters iterations of
//     invlpg [flush]; mov rax, [x]
// with flush = x (every load misses the softmmu TLB, walks and refills) and flush = y (an
// unmapped neighbour page: the same invlpg work, every load hits). Both run the same
// translated code; the difference per iteration is QEMU's miss + walk + refill.
// Rounds alternate A (miss) and B (hit). Output on the debugcon port 0xe9, one line each:
//     N <iterations>   T <tsc>   T <tsc>   then A <cycles>, B <cycles> per round
// (numbers in hex; the two T lines bracket the rounds), then the guest exits through isa-debug-exit (port 0xf4): status 0x21
// from QEMU ((0x10 << 1) | 1) means the run completed.

#define ITERS 0x1000
#define ROUNDS 201
#define X 0x7f1234567000
#define Y 0x7f1234568000

        .section .multiboot, "a"
        .align 4
        .long 0x1badb002                 // magic
        .long 0                          // flags: plain ELF, nothing asked of the loader
        .long -(0x1badb002)              // checksum

        .text
        .code32
        .globl _start
_start:
        cli
        mov $stack_top, %esp
        mov %cr4, %eax
        or $(1 << 5), %eax               // CR4.PAE
        mov %eax, %cr4
        mov $pml4, %eax
        mov %eax, %cr3
        mov $0xc0000080, %ecx            // EFER
        rdmsr
        or $((1 << 8) | (1 << 11)), %eax // LME, NXE
        wrmsr
        mov %cr0, %eax
        or $0x80010001, %eax             // PG, WP, PE
        mov %eax, %cr0
        lgdt gdt_ptr
        ljmp $0x08, $long_mode

        .code64
long_mode:
        mov $0x10, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        mov $stack_top, %rsp

        mov $'N', %dil
        mov $ITERS, %rsi
        call put_line

        movabs $X, %rdi
        mov (%rdi), %rax                 // first access: sets the A bits
        call tsc
        mov %rax, %rsi
        mov $'T', %dil
        call put_line

        // The rounds' results are kept and printed after the second T line, so that the host
        // stamps both T lines as they happen (nothing queued before them).
        lea results(%rip), %r13
        mov $ROUNDS, %r12d
1:      movabs $X, %rsi
        call timed_loop
        mov %rax, (%r13)
        movabs $Y, %rsi
        call timed_loop
        mov %rax, 8(%r13)
        add $16, %r13
        dec %r12d
        jnz 1b

        call tsc
        mov %rax, %rsi
        mov $'T', %dil
        call put_line

        lea results(%rip), %r13
        mov $ROUNDS, %r12d
5:      mov (%r13), %rsi
        mov $'A', %dil
        call put_line
        mov 8(%r13), %rsi
        mov $'B', %dil
        call put_line
        add $16, %r13
        dec %r12d
        jnz 5b

        mov $0x10, %al
        out %al, $0xf4                   // isa-debug-exit
        hlt
        jmp .

// rax = cycles of ITERS iterations of invlpg [rsi]; mov rax, [X].
timed_loop:
        movabs $X, %rdi
        mov $ITERS, %ecx
        call tsc
        mov %rax, %r8
        .align 16
2:      invlpg (%rsi)
        mov (%rdi), %rax
        dec %ecx
        jnz 2b
        call tsc
        sub %r8, %rax
        ret

// rax = the TSC (rdtsc after lfence, so earlier work is done).
tsc:
        lfence
        rdtsc
        shl $32, %rdx
        or %rdx, %rax
        ret

// Writes "<dil> <rsi in hex>\n" to port 0xe9.
put_line:
        mov $0xe9, %dx
        mov %dil, %al
        out %al, %dx
        mov $' ', %al
        out %al, %dx
        mov $16, %ecx
3:      rol $4, %rsi
        mov %esi, %eax
        and $0xf, %eax
        add $'0', %al
        cmp $'9', %al
        jbe 4f
        add $('a' - '9' - 1), %al
4:      out %al, %dx
        dec %ecx
        jnz 3b
        mov $'\n', %al
        out %al, %dx
        ret

        .data
        .align 8
gdt:    .quad 0
        .quad 0x00af9a000000ffff         // 0x08: 64-bit code
        .quad 0x00cf92000000ffff         // 0x10: data
gdt_ptr:
        .word gdt_ptr - gdt - 1
        .long gdt

// Page tables. Table entries P|RW|US (7), the walk_bench leaf P|RW|US|XD.
        .align 4096
pml4:   .quad pdpt_low + 7
        .skip (254 - 1) * 8
        .quad pdpt_x + 7                 // index 254 of X
        .skip (511 - 254) * 8
pdpt_low:
        .quad pd_low + 7
        .skip 511 * 8
pd_low:                                  // the first GiB, 2 MiB pages, identity
        .set i, 0
        .rept 512
        .quad (i << 21) | 0x87
        .set i, i + 1
        .endr
pdpt_x: .skip 72 * 8
        .quad pd_x + 7                   // index 72
        .skip (511 - 72) * 8
pd_x:   .skip 418 * 8
        .quad pt_x + 7                   // index 418
        .skip (511 - 418) * 8
pt_x:   .skip 359 * 8
        .quad data_page + 7 + 0x8000000000000000  // index 359: X (XD); 360 (Y) stays not present
        .skip (511 - 359) * 8
data_page:
        .quad 0x1234
        .skip 4096 - 8

        .bss
        .align 4096
results:
        .skip ROUNDS * 16
        .align 16
        .skip 16384
stack_top:
