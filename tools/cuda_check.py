from protune_mm.cli.cuda_check import main

if __name__ == '__main__':
    raise SystemExit(main())
